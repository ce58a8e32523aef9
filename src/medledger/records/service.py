"""Clinical records on a node: validate, pseudonymize, index, encrypt, store, anchor, certify.

The FHIR API and the CLI are thin shells over ``RecordService``. A node's data directory holds,
beside the ledger's files, ``master.key`` (wraps every patient data key) and ``group.secret``
(pseudonyms and blind indexes; the same file on every node of a hospital group), both 0600.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.errors import InputError
from medledger.ledger.node import LedgerNode
from medledger.records.anchoring import AnchoredStore
from medledger.records.blind import (
    BlindIndex,
    GroupSecret,
    generate_group_secret,
    load_group_secret,
    pseudonym,
)
from medledger.records.fhir_model import validate_resource
from medledger.records.keyring import KeyRing
from medledger.records.masterkey import MasterKey, generate_master_key, load_master_key
from medledger.records.search_index import extract_index
from medledger.records.store import IndexRow, Loaded, RecordStore, Version

MASTER_FILE = "master.key"
GROUP_FILE = "group.secret"
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Parameters whose values identify a person: stored only as blind-index tokens.
_BLIND_TOKENS = frozenset({"identifier"})
_BLIND_STRINGS = frozenset({"name", "family", "given"})


@dataclass(frozen=True, slots=True)
class Saved:
    """The outcome of a write, with what a FHIR response needs."""

    version: Version
    resource: dict[str, Any] | None
    created: bool
    ledger_index: int | None


class RecordService:
    """Records of one node, on its ledger."""

    def __init__(
        self, ledger: LedgerNode, master: MasterKey, group: GroupSecret, *, institution: str
    ) -> None:
        self.ledger = ledger
        self.suite = ledger.suite
        self.institution = institution
        self.group = group
        self.blind = BlindIndex.from_group_secret(group, self.suite)
        self.keyring = KeyRing(ledger.store.engine, self.suite, [master])
        self.store = RecordStore(ledger.store.engine, self.keyring, self.suite)
        self.anchored = AnchoredStore(self.store, ledger)

    @classmethod
    def open(cls, ledger: LedgerNode, *, institution: str | None = None) -> RecordService:
        """Open the records of ``ledger``'s data directory, creating the key files once."""
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
        service = cls(ledger, master, group, institution=institution or ledger.config.node)
        service.anchored.recover()
        return service

    # -- writes ------------------------------------------------------------------------------

    def create(self, rtype: str, body: Any, *, conditional: str | None = None) -> Saved:
        """Create a new resource with a server-assigned id."""
        resource = validate_resource(body, expected_type=rtype)
        rid = str(uuid.uuid4())
        return self._save(rtype, rid, resource, must_be_new=True, conditional=conditional)

    def update(self, rtype: str, rid: str, body: Any, *, if_match: int | None = None) -> Saved:
        """Store a new version of ``rtype/rid`` (creating it if absent, as FHIR update may)."""
        _check_id(rid)
        resource = validate_resource(body, expected_type=rtype)
        if resource.get("id") not in (None, rid):
            raise InputError(
                f"resource id {resource.get('id')!r} does not match the URL id {rid!r}",
                field=f"{rtype}.id",
                value=resource.get("id"),
                expected=rid,
            )
        return self._save(rtype, rid, resource, if_match=if_match)

    def delete(self, rtype: str, rid: str) -> Saved:
        """Write a tombstone version; earlier versions stay readable through history."""
        _check_id(rid)
        current = self.store.current(rtype, rid)
        written = self.store.write(rtype, rid, None, inst=current.inst, subject=current.subject)
        version, receipt = self.anchored.anchor(written)
        return Saved(version, None, written.created, None if receipt is None else receipt.index)

    def _save(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        must_be_new: bool = False,
        conditional: str | None = None,
    ) -> Saved:
        subject = self.subject_of(rtype, rid, resource)
        written = self.store.write(
            rtype,
            rid,
            resource,
            inst=self.institution,
            subject=subject,
            index=self._index(resource),
            if_match=if_match,
            must_be_new=must_be_new,
            conditional=conditional,
        )
        version, receipt = self.anchored.anchor(written)
        loaded = self.store.load(version.rtype, version.rid, version.vid)
        return Saved(
            version, loaded.resource, written.created, None if receipt is None else receipt.index
        )

    # -- reads -------------------------------------------------------------------------------

    def read(self, rtype: str, rid: str, vid: int | None = None) -> Loaded:
        _check_id(rid)
        return self.store.load(rtype, rid, vid)

    def history(self, rtype: str, rid: str) -> list[Version]:
        _check_id(rid)
        return self.store.history(rtype, rid)

    def certificate(self, rtype: str, rid: str, vid: int) -> dict[str, Any]:
        """Return the ``medledger-cert/1`` of one version, with its payload salt."""
        loaded = self.read(rtype, rid, vid)
        index = loaded.version.ledger_index
        if index is None:
            raise InputError(
                f"{loaded.version.ref} is not anchored yet",
                field="vid",
                value=vid,
                expected="an anchored version",
            )
        return self.ledger.certificate(index, payload_salt=loaded.salt)

    # -- helpers -----------------------------------------------------------------------------

    def subject_of(self, rtype: str, rid: str, resource: dict[str, Any]) -> str:
        """Return the pseudonym whose data key encrypts this resource.

        All of one patient's resources share the patient's pseudonym (so erasing the patient
        shreds them all); resources about no patient use the institution's own.
        """
        if rtype == "Patient":
            return pseudonym(self.group, self.institution, f"Patient/{rid}", self.suite)
        for field in ("subject", "patient"):
            ref = resource.get(field)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                target = ref["reference"].rsplit("/_history/", 1)[0]
                if "Patient/" in target:
                    patient = "Patient/" + target.split("Patient/", 1)[1]
                    return pseudonym(self.group, self.institution, patient, self.suite)
        return pseudonym(self.group, self.institution, "institution", self.suite)

    def _index(self, resource: dict[str, Any]) -> list[IndexRow]:
        rows = []
        for v in extract_index(resource):
            value, system = v.value, v.system
            if v.param in _BLIND_TOKENS:
                value, system = self.blind.token(system, value), None
            elif v.param in _BLIND_STRINGS or v.kind == "string":
                value = self.blind.name(value)
            rows.append(IndexRow(v.param, v.kind, system, value, v.low, v.high))
        return rows


def _check_id(rid: str) -> None:
    if not _ID.fullmatch(rid):
        raise InputError(
            f"{rid!r} is not a valid FHIR id",
            field="id",
            value=rid,
            expected="1-64 characters of A-Z a-z 0-9 - .",
        )
