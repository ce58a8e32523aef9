"""The neutral model every interface maps into: requisitions (orders) and results (reports).

HL7 v2 (ORM^O01, OML^O21, ORU^R01), SQL view rows and FHIR all become these plain values first;
one mapping turns them into FHIR resources. Identifiers are business keys of the *sending*
institution (placer order number, filler order number, specimen barcode, patient id): they make
every interface idempotent. Codes are the sender's own item codes until
:mod:`medledger.interop.terminology` adds the receiver's.

This module holds data only; it imports nothing from the rest of the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "KINDS",
    "LAB_KINDS",
    "Coded",
    "ImageLink",
    "Kind",
    "OrderItem",
    "Patient",
    "Requisition",
    "Result",
    "ResultItem",
    "ResultStatus",
    "Value",
    "code_system",
    "identifier_system",
]

Kind = Literal["lab", "radiology", "ultrasound", "endoscopy", "pathology"]
KINDS: tuple[Kind, ...] = ("lab", "radiology", "ultrasound", "endoscopy", "pathology")
LAB_KINDS: frozenset[str] = frozenset({"lab", "pathology"})  # kinds that travel with a specimen

# FHIR DiagnosticReport / Observation status values a result can carry.
ResultStatus = Literal[
    "registered", "partial", "preliminary", "final", "amended", "corrected",
    "cancelled", "entered-in-error",
]  # fmt: skip


def identifier_system(institution: str, kind: str) -> str:
    """The identifier system of one institution's business keys, e.g.
    ``urn:medledger:id:hosp-member-east:placer``. ``kind`` is one of ``patient``, ``placer``,
    ``filler``, ``barcode``, ``visit``, ``message``."""
    return f"urn:medledger:id:{institution}:{kind}"


def code_system(institution: str) -> str:
    """The CodeSystem url of one institution's item dictionary (基础字典)."""
    return f"urn:medledger:dict:{institution}"


@dataclass(frozen=True)
class Coded:
    """A code in a code system, with its display text (often Chinese)."""

    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True)
class Patient:
    """The patient as the sender knows them. Kept only inside encrypted records, never on chain
    and never in logs: the ledger sees a pseudonym of (institution, id)."""

    id: str  # the sender's patient id (PID-3, 门诊号/住院号/病人ID)
    name: str | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    birth_date: str | None = None  # YYYY-MM-DD or YYYY-MM or YYYY
    national_id: str | None = None  # 身份证号: stored encrypted, searched by blind index only


@dataclass(frozen=True)
class OrderItem:
    """One requested exam or test (one OBR), identified by the placer order number."""

    placer: str  # placer order number (ORC-2 / OBR-2 / 申请单号), unique per sending institution
    code: Coded  # the sender's item code
    kind: Kind
    filler: str | None = None  # filler order number, once the performer assigned one
    barcode: str | None = None  # specimen barcode (送检条码), lab kinds only
    specimen_type: Coded | None = None
    collected: str | None = None  # RFC 3339 / FHIR dateTime
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    status: Literal["active", "revoked", "on-hold", "completed"] = "active"
    note: str | None = None  # clinical information (临床诊断/检查目的)
    body_site: str | None = None  # free text, e.g. 胸部


@dataclass(frozen=True)
class Requisition:
    """An order message: one patient, one or more items, from one institution to another."""

    sender: str  # institution id of the placer (who owns the resources created)
    performer: str | None  # institution id asked to perform, if the message says
    patient: Patient
    items: tuple[OrderItem, ...]
    authored: str  # when ordered, FHIR dateTime with offset
    requester: str | None = None  # ordering clinician's name or code (ORC-12), free text
    control_id: str | None = None  # MSH-10 or the view row key: the message's identity
    visit: str | None = None  # visit/encounter number (PV1-19)


@dataclass(frozen=True)
class Value:
    """An observation value: a quantity, a coded value, or text."""

    kind: Literal["quantity", "text", "coded"]
    text: str | None = None
    number: str | None = None  # decimal as text, exactly as sent
    unit: str | None = None
    code: Coded | None = None


@dataclass(frozen=True)
class ResultItem:
    """One observation (OBX) of a result."""

    code: Coded
    value: Value | None
    status: ResultStatus = "final"
    reference_range: str | None = None  # OBX-7 as sent, e.g. "115-150"
    interpretation: str | None = None  # OBX-8 abnormal flag: H, L, N, A, HH, LL
    observed: str | None = None


@dataclass(frozen=True)
class ImageLink:
    """A link to images: a DICOMweb WADO-RS study URL or a viewer / report-image URL."""

    url: str
    kind: Literal["wado-rs", "viewer", "report-image"]
    study_uid: str | None = None
    content_hash: str | None = None  # "sha256:<hex>" or "sm3:<hex>", checked when fetched
    content_type: str | None = None


@dataclass(frozen=True)
class Result:
    """A report (one OBR of an ORU^R01): linked to its order by the placer number."""

    sender: str  # institution id of the performer (owner of the report)
    placer_institution: str | None  # institution whose placer number this is
    patient: Patient
    placer: str | None  # the order's placer number; None makes the result a mismatch
    filler: str  # filler order number: the report's business key at the performer
    code: Coded
    kind: Kind
    status: ResultStatus
    issued: str  # FHIR instant with offset
    items: tuple[ResultItem, ...] = ()
    conclusion: str | None = None  # 诊断意见 / 结论
    findings: str | None = None  # 检查所见
    images: tuple[ImageLink, ...] = ()
    performer_name: str | None = None  # reporting physician, free text
    control_id: str | None = None
    reason: str | None = None  # why recalled or corrected (报告召回/更正原因)
    barcode: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
