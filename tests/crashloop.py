"""Run a writer subprocess and SIGKILL it at random instants while it works."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time


def kill_while_writing(argv: list[str], rounds: int, rnd: random.Random) -> list[bytes]:
    """Return every complete line the writer printed across ``rounds`` kill -9 rounds.

    Each round waits for the writer's first line (so the kill lands while it is writing, not
    while it starts up), then kills it at a random instant up to 0.8 s later. A line cut by
    the kill was never fully printed, so it was never an acknowledgement: it is dropped.
    """
    complete: list[bytes] = []
    for _ in range(rounds):
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            assert proc.stdout is not None
            lines: list[bytes] = []
            reader = threading.Thread(
                target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True
            )
            reader.start()
            deadline = time.monotonic() + 60
            while not lines and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            assert lines, "the writer printed nothing within 60 s"
            time.sleep(rnd.random() * 0.8)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            reader.join(10)
        complete += [x for x in lines if x.endswith(b"}\n")]
    return complete
