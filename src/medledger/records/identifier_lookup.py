"""Current resources by business identifier, in one prepared query for many identifiers.

The integration gateway links every message by identifiers (placer and filler numbers,
patient numbers): the general search planner builds, compiles and caches a statement per
call, which costs more than the lookup itself. This is the same search (the blind-index
``identifier`` token, current and undeleted versions, erased patients left out), prepared
once, for a list of tokens at a time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, exists, select

from medledger.store.schema import record_keys
from medledger.store.schema_records import record_current, record_search, record_versions

__all__ = ["identifier_query"]

_C, _S, _V, _K = record_current.c, record_search.c, record_versions.c, record_keys.c
_QUERY = (
    select(record_versions, _S.value.label("token"))
    .join_from(record_search, record_current, and_(_C.rtype == _S.rtype, _C.rid == _S.rid))
    .join(
        record_versions,
        and_(_V.rtype == _C.rtype, _V.rid == _C.rid, _V.vid == _C.vid),
    )
    .where(
        _S.rtype == bindparam("rtype"),
        _S.param == "identifier",
        _S.value.in_(bindparam("tokens", expanding=True)),
        _C.deleted.is_(False),
        ~exists().where(and_(_K.subject == _C.subject, _K.wrapped.is_(None))),
    )
    .order_by(_C.ts, _C.rid)
)
_OWNED = _QUERY.where(_C.inst == bindparam("owner"))


def identifier_query(
    rtype: str, tokens: list[str], owner: str | None
) -> tuple[Any, dict[str, Any]]:
    """The prepared statement and its parameters: rows of current ``rtype`` versions (of
    ``owner``, if given) carrying one of the blind identifier ``tokens``, oldest first, each
    with the matching ``token``."""
    params: dict[str, Any] = {"rtype": rtype, "tokens": tokens}
    if owner is None:
        return _QUERY, params
    params["owner"] = owner
    return _OWNED, params
