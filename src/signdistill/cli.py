"""What the command-line entry points share: one-line errors, exit codes, signals, ``--debug``.

A :class:`~signdistill.errors.UserError` (bad config, data or model file) prints one line naming
the key or file, with no traceback, and exits with 2; with ``--debug`` or ``HYDRA_FULL_ERROR=1``
its traceback is shown too, and the exit code is still 2. Hydra's own composition errors exit
with 2 as well (:func:`usage_exit_code`), with or without ``--debug``. Ctrl-C and SIGTERM exit
with 130 and 143 (:mod:`signdistill.signals`). Other errors are bugs: their traceback is shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from hydra.errors import CompactHydraException

from signdistill import signals
from signdistill.errors import UserError

DEBUG_FLAG = "--debug"
USAGE_ERROR = 2


def debug_requested(argv: list[str]) -> bool:
    """Remove ``--debug`` from ``argv`` (Hydra would refuse it); true if it was there."""
    if DEBUG_FLAG not in argv:
        return os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv.remove(DEBUG_FLAG)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's own errors show their traceback too
    return True


def guarded(task: Callable[[], Any], debug: bool, one_of_many: bool = False) -> Any:
    """Run ``task`` with the signal handling and the error presentation described above.

    ``one_of_many`` (a job of a sweep): a user error is raised on, so the sweep records the
    failed trial and goes on, instead of ending the process.
    """
    signals.install()
    try:
        return task()
    except UserError as e:
        if one_of_many:
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    except (KeyboardInterrupt, SystemExit):
        code = signals.exit_code()
        if code is None:
            raise
        print(f"stopped by signal {signals.received()}", file=sys.stderr)
        raise SystemExit(code) from None


@contextlib.contextmanager
def usage_exit_code() -> Iterator[None]:
    """Hydra's own one-message errors (override grammar, an unknown config option or key) exit
    with 2 like ours, not 1: Hydra prints them, then exits 1 while handling them, so the exit's
    context is the Hydra error. With ``--debug`` (``HYDRA_FULL_ERROR=1``) Hydra raises them on
    instead: their traceback is shown, and the exit code is 2 all the same."""
    try:
        yield
    except CompactHydraException:
        traceback.print_exc()
        raise SystemExit(USAGE_ERROR) from None
    except SystemExit as e:
        if e.code == 1 and isinstance(e.__context__, CompactHydraException):
            raise SystemExit(USAGE_ERROR) from None
        raise
