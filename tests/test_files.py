"""File helpers: temporary files and scratch folders of dead processes are removed, live ones
kept; a recycled pid does not pass for the process that started a run."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from signdistill import files
from signdistill.files import atomic_write_bytes, process_alive, remove_stale_temporaries


def _temporary(folder: Path, pid: int, host: str = files.HOST, age_s: float = 0.0) -> Path:
    path = folder / f".blobs-0123.npz.{pid}@{host}.k2j4h5g6.tmp"
    path.write_bytes(b"half")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = _temporary(tmp_path, _dead_pid())
    live = _temporary(tmp_path, os.getppid())  # pytest's parent: running
    own = _temporary(tmp_path, os.getpid())
    elsewhere = _temporary(tmp_path, 1234, host="other-host")  # its pid means nothing here
    abandoned = _temporary(tmp_path, 1235, host="other-host", age_s=2 * files.STALE_AFTER_S)
    foreign = tmp_path / ".notes.tmp"  # not ours, however old
    foreign.write_text("x")
    os.utime(foreign, (0, 0))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, abandoned])
    assert all(p.exists() for p in (live, own, elsewhere, foreign))


def test_a_killed_writer_leaves_a_temporary_file_the_next_write_removes(tmp_path):
    """A process killed while writing the cache (SIGKILL: no cleanup runs)."""
    target = tmp_path / "blobs-0123.npz"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from signdistill.files import atomic_write_bytes; "
            "atomic_write_bytes(Path(sys.argv[1]), lambda f: (f.write(b'x'), time.sleep(60)))",
            str(target),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (left,) = tmp_path.glob(".*.tmp")
        assert left.name.startswith(f".{target.name}.{writer.pid}@")
    finally:
        writer.kill()
        writer.wait()
    atomic_write_bytes(tmp_path / "other.npz", lambda f: f.write(b"ok"))
    assert not left.exists() and (tmp_path / "other.npz").read_bytes() == b"ok"


def test_scratch_folders_of_dead_processes_are_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"signdistill-{_dead_pid()}@{files.HOST}-abc123"
    live = tmp_path / f"signdistill-{os.getppid()}@{files.HOST}-def456"
    other = tmp_path / f"signdistill-{_dead_pid()}@other-host-ghi789"  # not this host's pid
    for folder in (dead, live, other):
        (folder / "checkpoints").mkdir(parents=True)
    with files.scratch_dir() as mine:
        assert mine.parent == tmp_path and mine.name.startswith(f"signdistill-{os.getpid()}@")
        assert not dead.exists() and live.exists() and other.exists()
    assert not mine.exists()


def test_a_recycled_pid_is_not_the_process_that_started_a_run():
    me = os.getpid()
    assert process_alive(me) and process_alive(me, started_before=time.time())
    assert not process_alive(me, started_before=0.0)  # this process started after 1970
    assert not process_alive(_dead_pid())
