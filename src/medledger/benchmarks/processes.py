"""Child processes the benchmarks start (servers under test, peers)."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["stop_process"]


def stop_process(proc: subprocess.Popen[Any], wait_s: float) -> None:
    """Terminate ``proc``, kill it if it has not exited within ``wait_s`` s; close its pipes."""
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
    with proc:  # leaving closes the pipes and waits for the exit
        pass
