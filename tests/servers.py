"""Throwaway servers for tests, bound to 127.0.0.1 and stopped by the test that starts them."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        pytest.skip(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run server commands as the 'postgres' user when root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres(*databases: str) -> Iterator[str]:
    """A fresh PostgreSQL cluster in a temporary folder; yields a URL template with {db}."""
    tmp = Path(tempfile.mkdtemp(prefix="pg-"))
    tmp.chmod(0o777)
    data, port = tmp / "data", free_port()
    run = lambda cmd: subprocess.run(_as_postgres(cmd), check=True, capture_output=True)  # noqa: E731
    run([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    opts = f"-h 127.0.0.1 -p {port} -k {tmp} -c max_connections=100"
    run([_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start"])
    try:
        for db in databases:
            run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db])
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{{db}}"
    finally:
        run([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 over ``backend``; yields its URL."""
    port = free_port()
    exe = Path(os.sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
