"""Process-wide choices an MLLP process makes once: the event loop and the open-files limit.

The server and client classes run on whatever event loop their caller runs: the loop is the
caller's choice. A process that exists to serve or drive MLLP (the gateway, the benchmark's
peer and load generator) should start its loop with :func:`run`, which uses uvloop where it is
installed (Linux) and the standard loop elsewhere.

Every connection holds a file descriptor, on both ends when client and server share a machine:
:func:`raise_open_files_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["loop_name", "raise_open_files_limit", "run"]

T = TypeVar("T")
log = logging.getLogger("medledger.interop.mllp")


def loop_name() -> str:
    """Name the loop :func:`run` would use: ``uvloop`` or ``asyncio``."""
    try:
        import uvloop  # noqa: F401  (only asked whether it is there)
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new uvloop loop if installed, else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit; return the new soft limit.

    Returns -1 where the platform has no ``resource`` module (Windows). Never lowers a limit.
    """
    try:
        import resource
    except ImportError:
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. a container that forbids it
            log.warning("could not raise the open-files limit: %s", type(exc).__name__)
            return int(soft)
        return int(hard)
    return int(soft)
