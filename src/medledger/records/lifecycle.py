"""Key lifecycle of a node's records: master key rotation and crypto-shredding a patient.

Both are administrative operations of the CLI (``medledger keys rotate``, ``medledger patient
erase``): they take the node's writer lock and leave a ledger entry.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from medledger.errors import InputError, NotFound, StateError
from medledger.records.blind import pseudonym
from medledger.records.keyring import Progress
from medledger.records.masterkey import generate_master_key, load_master_key

if TYPE_CHECKING:
    from medledger.records.service import RecordService

__all__ = ["erase_patient", "rotate_master"]


def rotate_master(
    self: RecordService, progress: Progress | None = None, *, batch: int = 500
) -> tuple[str, str, int]:
    """Re-wrap every patient data key under a new master key; payloads are untouched.

    The new key is staged as ``master.key.next`` first, so an interrupted rotation (even
    kill -9) resumes on the next run while reads keep working with both keys. When it is
    done, the old key file is kept as ``master.key.retired-<kid>`` (backups still need it)
    and a ``key.rotate`` entry goes on the ledger. Returns (old kid, new kid, re-wrapped).
    """
    from medledger.records import service as svc

    self.ledger.acquire_writer()  # never rotate under a running server's feet
    data = self.ledger.data_dir
    next_path = data / svc.NEXT_MASTER_FILE
    new = (
        load_master_key(next_path)
        if next_path.exists()
        else generate_master_key(next_path, self.suite)
    )
    old = self.master
    count = self.keyring.rotate(new, batch=batch, progress=progress)
    os.replace(data / svc.MASTER_FILE, data / f"{svc.MASTER_FILE}.retired-{old.kid}")
    os.replace(next_path, data / svc.MASTER_FILE)
    self.master = new
    self.ledger.append(
        [
            {
                "v": 1,
                "type": "key.rotate",
                "inst": self.institution,
                "ts": svc._now(),
                "meta": {"from": old.kid, "to": new.kid, "rewrapped": count},
            }
        ]
    )
    return old.kid, new.kid, count


def erase_patient(
    self: RecordService,
    patient_id: str,
    reason: str,
    *,
    force: bool = False,
    retention_years: int = 5,  # records.service.RETENTION_YEARS
) -> tuple[str, int]:
    """Crypto-shred a patient: destroy their data key so every version becomes unreadable.

    Refused while the patient's records are younger than the retention floor unless
    ``force`` is given. The erasure (forced or not) is a ``record.erase`` ledger entry that
    carries the pseudonym and a hash of the reason, never the reason itself. Returns the
    erasure time and the entry's ledger index.
    """
    from medledger.records import service as svc

    svc._check_id(patient_id)
    self.ledger.acquire_writer()
    if not reason.strip():
        raise InputError(
            "an erasure needs a reason",
            field="reason",
            value=reason,
            expected="an administrative reference, e.g. a ticket number",
        )
    subject = pseudonym(self.group, self.institution, f"Patient/{patient_id}", self.suite)
    last = self.store.last_update(subject)
    if last is None:
        raise NotFound(
            f"no records of Patient/{patient_id} on this node",
            field="patient",
            value=patient_id,
        )
    floor = svc._years_after(last, retention_years)
    if not force and svc._now() < floor:
        raise StateError(
            f"Patient/{patient_id} was last updated {last}; the {retention_years}-year "
            f"retention floor allows erasure from {floor}. Use --force with a reason to "
            "erase earlier (the override is recorded on the ledger).",
            field="patient",
            value=patient_id,
        )
    when = self.keyring.shred(subject, reason)
    self.store.drop_search_rows(subject)
    receipt = self.ledger.append(
        [
            {
                "v": 1,
                "type": "record.erase",
                "inst": self.institution,
                "ts": when,
                "subject": subject,
                "meta": {
                    "forced": force,
                    "retention_floor": floor,
                    "reason_hash": self.suite.hash(reason.encode()).hex(),
                },
            }
        ]
    )[0]
    return when, receipt.index
