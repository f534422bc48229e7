"""Adopting orphans: what a harness (or a test run) needs to reap everything it made.

A process whose parent dies is handed to its nearest "child subreaper"
ancestor, or to PID 1. A tool that makes zombies on purpose becomes a
subreaper so the zombies of a server it killed come back to it, at once,
instead of to an init that may reap late or never (tini does the same).
"""

from __future__ import annotations

import ctypes

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); False where the kernel cannot do it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
