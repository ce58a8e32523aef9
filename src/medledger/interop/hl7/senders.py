"""Which institution a facility named in a message is: MSH-4, MSH-6, ORC-21, ORC-13.

Facilities appear as HD (``namespace id ^ universal id ^ universal id type``), XON
(``organization name ^ … ^ organization identifier`` in component 10) or PL (facility in
component 4). Each configured facility name or id maps to one institution id; every
institution id also maps to itself, so a sender may put ``hosp-member-east`` in MSH-4.
Matching ignores case and surrounding spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from medledger.errors import InputError

__all__ = ["SenderMap"]


class SenderMap:
    """Map facility names and ids found in messages to institution ids."""

    def __init__(self, facilities: Mapping[str, str]) -> None:
        """``facilities`` maps facility names or ids (``示例区中医院``) to institution ids."""
        self._map: dict[str, str] = {}
        for name, inst in facilities.items():
            if not isinstance(name, str) or not isinstance(inst, str) or not inst.strip():
                raise InputError(
                    "a sender map entry must map a facility name to an institution id",
                    field="facilities",
                    value=f"{name!r} -> {inst!r}",
                    expected="str -> non-empty str",
                )
            self._map[_key(inst)] = inst
        for name, inst in facilities.items():
            if name.strip():
                self._map[_key(name)] = inst

    def lookup(self, names: Iterable[str | None]) -> str | None:
        """Return the institution of the first of ``names`` that is known, else None."""
        for name in names:
            if name and name.strip():
                found = self._map.get(_key(name))
                if found is not None:
                    return found
        return None

    @property
    def institutions(self) -> frozenset[str]:
        """Every institution id this map can return."""
        return frozenset(self._map.values())


def _key(name: str) -> str:
    """Return the lookup key of a facility name."""
    return name.strip().casefold()
