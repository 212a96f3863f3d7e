"""A child process that ends with its parent, however the parent ends.

Why: a parent killed outright (`kill -9`, the OOM killer) cannot stop its children, which
would run on: a conversion of `litert batch`, or a conversion's second export process, which
goes on lowering for minutes and writing a float model of 4 bytes per parameter into a work
directory nobody will remove (a Qwen3-14B half kept 47 GB of a full disk until killed by
hand, 2026-12-04). Linux's parent-death signal has the kernel send the child a signal when
its parent ends; elsewhere the parents' own Ctrl-C and SIGTERM handling still stop them.
"""

from __future__ import annotations

import contextlib
import os

PR_SET_PDEATHSIG = 1


def die_with_parent(signal: int, parent: int, exit_code: int) -> None:
    """In the child: receive `signal` when the process `parent` ends; if it ended already
    (before this was asked), exit now with `exit_code`."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(exit_code)
