"""Keeps HiGHS's one-time licence banner (printed by the first highspy.Highs()) off the process's stdout."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading

_lock = threading.Lock()
_done = False


def _flush_c_stdio() -> None:
    # The banner goes through C++ iostreams synced with C stdio; flush it while fd 1 still points at /dev/null.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def silence_highs_banner() -> None:
    """Construct the first Highs object with fd 1 pointed at /dev/null; later instances print nothing.

    cvxpy sets `output_flag` only after constructing Highs, too late for the banner. The fd swap happens once per
    process, for about a millisecond.
    """
    global _done
    with _lock:
        if _done:
            return
        _done = True
        import highspy  # untyped C extension

        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
            _flush_c_stdio()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
