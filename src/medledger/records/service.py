"""Clinical records on a node: validate, pseudonymize, index, encrypt, store, anchor, certify.

The FHIR API and the CLI are thin shells over ``RecordService``. A node's data directory holds,
beside the ledger's files, ``master.key`` (wraps every patient data key) and ``group.secret``
(pseudonyms and blind indexes; the same file on every node of a hospital group), both 0600.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from medledger.errors import Gone, InputError, NotFound, PreconditionFailed, StateError
from medledger.ledger.block import format_ts
from medledger.ledger.node import LedgerNode
from medledger.records.anchoring import AnchoredStore
from medledger.records.blind import (
    GroupSecret,
    generate_group_secret,
    load_group_secret,
)
from medledger.records.fhir_model import validate_resource
from medledger.records.guard import DELETE, READ, SEARCH, WRITE, Guard, SystemGuard
from medledger.records.indexing import BLIND_PARAMS, Indexer
from medledger.records.keyring import KeyRing, Progress
from medledger.records.lookups import Lookups
from medledger.records.masterkey import MasterKey, generate_master_key, load_master_key
from medledger.records.paging import (
    HistoryPage,
    SearchPage,
    decode_page,
    encode_page,
    page_count,
    since_instant,
)
from medledger.records.search_params import parse_search
from medledger.records.search_sql import where_clauses
from medledger.records.store import Loaded, RecordStore, Version
from medledger.records.visibility import Facts, Visibility

log = logging.getLogger(__name__)

MASTER_FILE = "master.key"
NEXT_MASTER_FILE = "master.key.next"  # present only while a rotation is under way
GROUP_FILE = "group.secret"
RETENTION_YEARS = 5  # 电子健康档案 retention floor (GLOSSARY: 病历保存期限)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_MAX_VID = 2**31 - 1
# Parameters that narrow a search to a few resources: such searches start from the index.
_SELECTIVE = frozenset(
    {"_id", "identifier", "patient", "subject", "based-on", "specimen", "name", "family", "given"}
)


@dataclass(frozen=True, slots=True)
class Saved:
    """The outcome of a write, with what a FHIR response needs."""

    version: Version
    resource: dict[str, Any] | None
    created: bool
    ledger_index: int | None


class RecordService(Lookups):
    """Records of one node, on its ledger."""

    def __init__(
        self,
        ledger: LedgerNode,
        master: MasterKey,
        group: GroupSecret,
        *,
        institution: str,
        next_master: MasterKey | None = None,
    ) -> None:
        self.ledger = ledger
        self.suite = ledger.suite
        self.institution = institution
        self.group = group
        self.master = master
        masters = [master] if next_master is None else [next_master, master]
        self.keyring = KeyRing(ledger.store.engine, self.suite, masters)
        self.store = RecordStore(ledger.store.engine, self.keyring, self.suite)
        self.anchored = AnchoredStore(self.store, ledger)
        self.indexer = Indexer(group, self.suite, institution, self.store.facts)
        self.system = SystemGuard(institution)
        self.listeners: list[Callable[[Sequence[Version]], None]] = []
        """Called with the versions of each write once they are anchored (subscriptions and
        the gateway listen here). A listener must be quick and must not raise: it runs on the
        writing thread before the write is answered."""

    @classmethod
    def open(
        cls, ledger: LedgerNode, *, institution: str | None = None, recover: bool = True
    ) -> RecordService:
        """Open the records of ``ledger``'s data directory, creating the key files once.

        ``recover`` appends the entries of versions a crash left pending (an audit opens
        without it, so that checking never writes).
        """
        data: Path = ledger.data_dir
        master_path, group_path = data / MASTER_FILE, data / GROUP_FILE
        master = (
            load_master_key(master_path)
            if master_path.exists()
            else generate_master_key(master_path, ledger.suite)
        )
        group = (
            load_group_secret(group_path)
            if group_path.exists()
            else generate_group_secret(group_path)
        )
        next_path = data / NEXT_MASTER_FILE
        nxt = load_master_key(next_path) if next_path.exists() else None
        service = cls(
            ledger,
            master,
            group,
            institution=institution or ledger.config.node,
            next_master=nxt,
        )
        if recover:
            service.anchored.recover()
        return service

    # -- keys and erasure --------------------------------------------------------------------

    def rotate_master(
        self, progress: Progress | None = None, *, batch: int = 500
    ) -> tuple[str, str, int]:
        """Re-wrap every data key under a new master key (``records.lifecycle``)."""
        from medledger.records.lifecycle import rotate_master

        return rotate_master(self, progress, batch=batch)

    def erase_patient(
        self,
        patient_id: str,
        reason: str,
        *,
        force: bool = False,
        retention_years: int = RETENTION_YEARS,
    ) -> tuple[str, int]:
        """Crypto-shred a patient (``records.lifecycle``)."""
        from medledger.records.lifecycle import erase_patient

        return erase_patient(self, patient_id, reason, force=force, retention_years=retention_years)

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        rtype: str,
        body: Any,
        *,
        if_none_exist: str | None = None,
        guard: Guard | None = None,
    ) -> Saved:
        """Create a new resource with a server-assigned id, owned by the guard's institution.

        With ``if_none_exist`` (a FHIR search query string) this is a conditional create: one
        match among the institution's own resources returns it unchanged (``created=False``),
        several are a 412, none creates. Two identical conditional creates racing each other
        converge on one resource: the normalized criteria are a unique key in the store.
        """
        g = guard or self.system
        resource = validate_resource(body, expected_type=rtype)
        g.check(WRITE, rtype, None, None)
        criteria = None
        if if_none_exist is not None:
            params = sorted(parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True))
            if not params:
                raise InputError(
                    "If-None-Exist holds no search parameters",
                    field="If-None-Exist",
                    value=if_none_exist,
                    expected="e.g. identifier=urn:lis|BC-1",
                )
            found = self.own_matches(rtype, params, g.institution)
            if len(found.resources) > 1:
                raise PreconditionFailed(
                    f"If-None-Exist {if_none_exist!r} matches more than one {rtype}",
                    field="If-None-Exist",
                    value=if_none_exist,
                )
            if found.resources:
                return self._touch(g, self.existing(rtype, found.resources[0]["id"]))
            criteria = self.conditional_criteria(rtype, params, g.institution)
        for _ in range(2):
            try:
                saved = self._save(
                    rtype,
                    str(uuid.uuid4()),
                    resource,
                    g,
                    must_be_new=True,
                    conditional=criteria,
                )
            except Gone as exc:  # the recorded match was deleted since
                stale = exc.details.get("ref", "").split("/")
                if criteria is None or len(stale) < 2:
                    raise
                self.store.forget_conditional(rtype, criteria, stale[1])
                continue
            if criteria is None or saved.created:
                return saved
            # A concurrent twin won, or an old criteria row points at a resource that no
            # longer matches: keep it only if it still matches now.
            if not self.forget_stale_conditional(
                rtype, criteria, params, saved.version.rid, institution=g.institution
            ):
                return saved
        raise StateError(
            f"conditional create of {rtype} kept conflicting; retry", field="If-None-Exist"
        )

    def update(
        self,
        rtype: str,
        rid: str,
        body: Any,
        *,
        if_match: int | None = None,
        guard: Guard | None = None,
    ) -> Saved:
        """Store a new version of ``rtype/rid`` (creating it if absent, as FHIR update may).

        The guard decides on the current version; if another request changes the resource
        between that decision and the write, the write is refused (409: retry).
        """
        g = guard or self.system
        _check_id(rid)
        resource = validate_resource(body, expected_type=rtype)
        if resource.get("id") not in (None, rid):
            raise InputError(
                f"resource id {resource.get('id')!r} does not match the URL id {rid!r}",
                field=f"{rtype}.id",
                value=resource.get("id"),
                expected=rid,
            )
        facts = self.store.facts(rtype, rid)
        g.check(WRITE, rtype, rid, facts)
        return self._save(rtype, rid, resource, g, if_match=if_match, owner=facts)

    def delete(
        self, rtype: str, rid: str, *, if_match: int | None = None, guard: Guard | None = None
    ) -> Saved:
        """Write a tombstone version; earlier versions stay readable through history."""
        g = guard or self.system
        _check_id(rid)
        facts = self.store.facts(rtype, rid)
        if facts is None:
            raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
        g.check(DELETE, rtype, rid, facts)
        written = self.store.write(
            rtype,
            rid,
            None,
            inst=facts.owner,
            subject=facts.subject,
            if_match=if_match,
            owner=facts.owner,
        )
        version, receipt = self.anchored.anchor(written)
        if receipt is None and version.ledger_index is None:  # a repeated delete, still pending
            version = self.store.wait_anchored(version)
        g.touched(version.ref, version.subject, version.inst)
        if receipt is not None:
            self.notify([version])
        return Saved(version, None, written.created, version.ledger_index)

    def _save(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        guard: Guard,
        *,
        if_match: int | None = None,
        must_be_new: bool = False,
        conditional: str | None = None,
        owner: Facts | None = None,
    ) -> Saved:
        subject = self.indexer.subject_of(rtype, rid, resource)
        written = self.store.write(
            rtype,
            rid,
            resource,
            inst=owner.owner if owner is not None else guard.institution,
            subject=subject,
            index=self.indexer.index_rows(rtype, resource),
            if_match=if_match,
            must_be_new=must_be_new,
            conditional=conditional,
            owner=owner.owner if owner is not None else ("" if not must_be_new else None),
        )
        version, receipt = self.anchored.anchor(written)
        if receipt is None:  # nothing new was written (a lost conditional-create race)
            return self._touch(guard, self.existing(version.rtype, version.rid, version.vid))
        guard.touched(version.ref, version.subject, version.inst)
        self.notify([version])
        return Saved(version, written.resource, written.created, receipt.index)

    def notify(self, versions: Sequence[Version]) -> None:
        """Tell the listeners about newly anchored versions (a failing listener is logged)."""
        for listener in self.listeners:
            try:
                listener(versions)
            except Exception as exc:  # a listener's bug must not fail a durable write
                log.error("write listener %s failed: %s", listener, type(exc).__name__)

    @staticmethod
    def _touch(guard: Guard, saved: Saved) -> Saved:
        guard.touched(saved.version.ref, saved.version.subject, saved.version.inst)
        return saved

    def existing(self, rtype: str, rid: str, vid: int | None = None) -> Saved:
        """Answer with a version someone else wrote, once its ledger entry is durable.

        Its writer may still be waiting for the block: acknowledging it before then would
        break "acknowledged only after the ledger entry is durable".
        """
        loaded = self.store.load(rtype, rid, vid)
        if loaded.version.ledger_index is None:
            version = self.store.wait_anchored(loaded.version)
            loaded = Loaded(version, loaded.resource, loaded.salt)
        return Saved(loaded.version, loaded.resource, False, loaded.version.ledger_index)

    # -- reads -------------------------------------------------------------------------------

    def _readable(self, rtype: str, rid: str, guard: Guard | None) -> Guard:
        g = guard or self.system
        _check_id(rid)
        facts = self.store.facts(rtype, rid)
        if facts is None:
            raise NotFound(f"{rtype}/{rid} does not exist", field="id", value=rid)
        g.check(READ, rtype, rid, facts)
        return g

    def read(
        self, rtype: str, rid: str, vid: int | None = None, *, guard: Guard | None = None
    ) -> Loaded:
        g = self._readable(rtype, rid, guard)
        if vid is not None and not 1 <= vid <= _MAX_VID:
            raise NotFound(
                f"{rtype}/{rid}/_history/{vid} does not exist",
                field="vid",
                value=vid,
                expected=f"1 .. {_MAX_VID}",
            )
        loaded = self.store.load(rtype, rid, vid)
        g.touched(loaded.version.ref, loaded.version.subject, loaded.version.inst)
        return loaded

    def history(self, rtype: str, rid: str, *, guard: Guard | None = None) -> list[Version]:
        g = self._readable(rtype, rid, guard)
        versions = self.store.history(rtype, rid)
        for v in versions:
            g.touched(v.ref, v.subject, v.inst)
        return versions

    def type_history(
        self, rtype: str, params: list[tuple[str, str]], *, guard: Guard | None = None
    ) -> HistoryPage:
        """History of every resource of ``rtype`` the caller may see, newest first."""
        g = guard or self.system
        count, since, token = 20, None, None
        for name, value in params:
            if name == "_count":
                count = page_count(value)
            elif name == "_since":
                since = since_instant(value)
            elif name == "_page_token":
                token = value
            else:
                raise InputError(
                    f"parameter {name!r} is not supported on _history",
                    field=name,
                    value=value,
                    expected="_count, _since",
                )
        offset = decode_page(token)
        visible = g.visibility(SEARCH, rtype)
        found, more = self.store.type_history(
            rtype, since=since, limit=count + 1, offset=offset, visible=visible.clause(rtype)
        )
        for v, _ in found:
            g.touched(v.ref, v.subject, v.inst)
        return HistoryPage(found, encode_page(offset + count) if more else None)

    def certificate(
        self, rtype: str, rid: str, vid: int, *, guard: Guard | None = None
    ) -> dict[str, Any]:
        """Return the ``medledger-cert/1`` of one version, with its payload salt."""
        loaded = self.read(rtype, rid, vid, guard=guard)
        index = loaded.version.ledger_index
        if index is None:
            raise InputError(
                f"{loaded.version.ref} is not anchored yet",
                field="vid",
                value=vid,
                expected="an anchored version",
            )
        return self.ledger.certificate(index, payload_salt=loaded.salt)

    def search(
        self,
        rtype: str,
        params: list[tuple[str, str]],
        *,
        guard: Guard | None = None,
        visible: Visibility | None = None,
    ) -> SearchPage:
        """Run a FHIR search over what the caller may see (``visible`` overrides the guard's
        visibility); pages and ``_total`` count only that."""
        g = guard or self.system
        query = parse_search(rtype, params)
        vis = visible if visible is not None else g.visibility(SEARCH, rtype)
        offset = decode_page(query.page_token)
        conditions = where_clauses(rtype, query.criteria, self.indexer.blind_value, BLIND_PARAMS)
        found, total, more = self.store.search(
            rtype,
            conditions,
            newest_first=query.sort == "-_lastUpdated",
            limit=query.count + 1,
            offset=offset,
            with_total=query.total == "accurate",
            selective=any(c.param in _SELECTIVE for c in query.criteria),
            visible=vis.clause(rtype),
        )
        for loaded in found:
            g.touched(loaded.version.ref, loaded.version.subject, loaded.version.inst)
        resources = [loaded.resource for loaded in found]
        return SearchPage(resources, total, encode_page(offset + query.count) if more else None)


def _now() -> str:
    return format_ts(time.time())


def _years_after(ts: str, years: int) -> str:
    when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    try:
        later = when.replace(year=when.year + years)
    except ValueError:  # 29 February
        later = when.replace(year=when.year + years, day=28)
    return format_ts(later.timestamp())


def _check_id(rid: str) -> None:
    if not _ID.fullmatch(rid):
        raise InputError(
            f"{rid!r} is not a valid FHIR id",
            field="id",
            value=rid,
            expected="1-64 characters of A-Z a-z 0-9 - .",
        )
