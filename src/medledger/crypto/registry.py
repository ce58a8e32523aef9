"""Look suites up by the name a chain records at ``medledger init``."""

from __future__ import annotations

import threading

from medledger.crypto.suite import Suite
from medledger.errors import UnknownSuite

__all__ = ["SUITES", "get_suite"]

SUITES: tuple[str, ...] = ("intl-v1", "sm-v1")

_instances: dict[str, Suite] = {}
_lock = threading.Lock()


def _build(name: str) -> Suite:
    # Imported on first use: a chain on one suite never loads the other suite's libraries
    # (Tongsuo in particular is a second copy of a libcrypto).
    if name == "intl-v1":
        from medledger.crypto.intl import IntlSuite

        return IntlSuite()
    from medledger.crypto.sm import SMSuite

    return SMSuite()


def get_suite(name: str) -> Suite:
    """Return the one shared instance of suite ``name``; raise ``UnknownSuite`` if none exists."""
    if not isinstance(name, str) or name not in SUITES:
        raise UnknownSuite(
            f"unknown crypto suite {name!r}",
            field="suite",
            value=name,
            expected="one of " + ", ".join(SUITES),
        )
    with _lock:
        suite = _instances.get(name)
        if suite is None:
            suite = _instances[name] = _build(name)
    return suite
