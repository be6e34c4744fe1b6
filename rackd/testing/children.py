"""Child processes of tests die with the test process, even when it is killed (Linux PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for Popen: the child gets SIGTERM when the process that started it exits for any reason.

    The kernel ties this to the *thread* that forked: start children from the main thread (or another
    long-lived one), never from a short-lived worker thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
