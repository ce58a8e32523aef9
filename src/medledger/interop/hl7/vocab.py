"""Code tables between HL7 v2 and the neutral model: kinds, sex, priority, statuses, systems.

**Kind rule** (OBR-24, diagnostic service section, HL7 table 0074 plus common local values;
case-insensitive):

============  =================================================================
kind          OBR-24 values
============  =================================================================
lab           LAB HM CH MB MCB MYC PAR SR BLB BG CG IMM TX VR OSL 检验
radiology     RAD CT MR NMR DX XA CR RX XRC MG NMS 放射
ultrasound    US RUS CUS OUS VUS 超声
endoscopy     ES ENDO 内镜
pathology     PAT SP CP PATH 病理
============  =================================================================

When OBR-24 is empty, the prefix of the item code (OBR-4.1) before its first ``-``, ``_`` or
``.`` is looked up in the same table (``CT-CHEST`` → radiology), then the coding system name
of OBR-4.3 (``US0201^腹部彩超^超声`` → ultrasound). Otherwise the message is answered AE
naming OBR-24 (101 when empty, 103 for a value not in the table).

**Coding systems** (component 3 of CE/CWE, table 0396): ``LN`` → ``http://loinc.org``,
``SCT``/``SNM``/``SNM3`` → ``http://snomed.info/sct``, ``UCUM`` →
``http://unitsofmeasure.org``, ``I10`` → ``http://hl7.org/fhir/sid/icd-10``, ``HL7nnnn`` →
``http://terminology.hl7.org/CodeSystem/v2-nnnn``; a value containing ``:`` is taken as a
system URI as it is; anything else (empty, ``L``, ``99zzz``, a vendor name) is the sending
institution's own dictionary, :func:`medledger.interop.model.code_system`. We write ``L`` for
the sender's own dictionary.
"""

from __future__ import annotations

import re

from medledger.interop.model import Kind, ResultStatus, code_system

__all__ = [
    "CONTROL_STATUS",
    "ITEM_STATUS",
    "KIND_CODES",
    "KIND_OUT",
    "PRIORITY",
    "PRIORITY_OUT",
    "REPORT_STATUS",
    "REPORT_STATUS_OUT",
    "SEX",
    "SEX_OUT",
    "STATUS_CODES",
    "item_status_out",
    "kind_for",
    "mnemonic_for",
    "system_for",
]

KIND_CODES: dict[str, Kind] = {
    **dict.fromkeys(
        ("LAB", "HM", "CH", "MB", "MCB", "MYC", "PAR", "SR", "BLB", "BG", "CG", "IMM", "TX",
         "VR", "OSL", "检验"),
        "lab",
    ),
    **dict.fromkeys(
        ("RAD", "CT", "MR", "NMR", "DX", "XA", "CR", "RX", "XRC", "MG", "NMS", "放射"),
        "radiology",
    ),
    **dict.fromkeys(("US", "RUS", "CUS", "OUS", "VUS", "超声"), "ultrasound"),
    **dict.fromkeys(("ES", "ENDO", "内镜"), "endoscopy"),
    **dict.fromkeys(("PAT", "SP", "CP", "PATH", "病理"), "pathology"),
}  # fmt: skip
KIND_OUT: dict[str, str] = {
    "lab": "LAB", "radiology": "RAD", "ultrasound": "RUS", "endoscopy": "ES", "pathology": "PAT",
}  # fmt: skip
_PREFIX = re.compile(r"[-_.]")

# PID-8: HL7 table 0001, GB/T 2261.1 (0 unknown, 1 male, 2 female, 9 unspecified) and Chinese.
SEX: dict[str, str] = {
    "M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown",
    "1": "male", "2": "female", "0": "unknown", "9": "unknown",
    "男": "male", "女": "female", "男性": "male", "女性": "female", "未知": "unknown",
    "未说明": "unknown", "未说明的性别": "unknown", "未知的性别": "unknown",
}  # fmt: skip
SEX_OUT: dict[str, str] = {"male": "M", "female": "F", "other": "O", "unknown": "U"}

# ORC-7.6 / OBR-27.6 / TQ1-9 priority (HL7 table 0485 plus "U"/"URGENT").
PRIORITY: dict[str, str] = {
    "S": "stat", "A": "asap", "R": "routine", "U": "urgent", "URGENT": "urgent",
    "T": "urgent", "P": "routine", "C": "routine", "PRN": "routine",
}  # fmt: skip
PRIORITY_OUT: dict[str, str] = {"stat": "S", "asap": "A", "routine": "R", "urgent": "U"}

# ORC-1 order control (table 0119) → OrderItem.status; SC reads ORC-5 (table 0038) instead.
CONTROL_STATUS: dict[str, str] = {
    "NW": "active", "XO": "active", "RL": "active",
    "CA": "revoked", "OC": "revoked", "DC": "revoked", "CR": "revoked",
    "HD": "on-hold",
}  # fmt: skip
STATUS_CODES: dict[str, str] = {
    "CM": "completed", "CA": "revoked", "DC": "revoked", "HD": "on-hold",
    "IP": "active", "SC": "active", "A": "active",
}  # fmt: skip

# OBR-25 result status (table 0123) → DiagnosticReport.status, per the HL7 v2-to-FHIR map.
REPORT_STATUS: dict[str, ResultStatus] = {
    "O": "registered", "I": "registered", "S": "registered", "A": "partial",
    "P": "preliminary", "R": "preliminary", "F": "final", "C": "corrected", "X": "cancelled",
}  # fmt: skip
REPORT_STATUS_OUT: dict[str, str] = {
    "registered": "I", "partial": "A", "preliminary": "P", "final": "F", "amended": "C",
    "corrected": "C", "cancelled": "X", "entered-in-error": "C",
}  # fmt: skip

# OBX-11 observation result status (table 0085) → Observation.status.
ITEM_STATUS: dict[str, ResultStatus] = {
    "C": "corrected", "D": "entered-in-error", "W": "entered-in-error", "F": "final",
    "U": "final", "P": "preliminary", "R": "preliminary", "S": "preliminary",
    "I": "registered", "O": "registered", "X": "cancelled", "N": "cancelled",
}  # fmt: skip
_ITEM_OUT: dict[str, str] = {
    "corrected": "C", "amended": "C", "entered-in-error": "W", "final": "F",
    "preliminary": "P", "partial": "P", "registered": "I", "cancelled": "X",
}  # fmt: skip

_SYSTEMS: dict[str, str] = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNM3": "http://snomed.info/sct",
    "UCUM": "http://unitsofmeasure.org",
    "I10": "http://hl7.org/fhir/sid/icd-10",
}
_SYSTEMS_OUT: dict[str, str] = {
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://unitsofmeasure.org": "UCUM",
    "http://hl7.org/fhir/sid/icd-10": "I10",
}
_V2_TABLE = re.compile(r"HL7(\d{4})")
_V2_URL = "http://terminology.hl7.org/CodeSystem/v2-"


def kind_for(section: str | None, code: str, system: str | None = None) -> Kind | None:
    """Return the kind of an OBR-24 value; when it is empty, of the item code's prefix, else
    of the item's coding system name (OBR-4.3)."""
    if section:
        return KIND_CODES.get(section.strip().upper())
    prefix = _PREFIX.split(code, maxsplit=1)[0].upper()
    if prefix != code.upper() and prefix in KIND_CODES:
        return KIND_CODES[prefix]
    return KIND_CODES.get(system.strip().upper()) if system else None


def item_status_out(status: str) -> str:
    """Return the OBX-11 code for an observation status."""
    return _ITEM_OUT[status]


def system_for(mnemonic: str | None, sender: str) -> str:
    """Return the code system URI for a CE/CWE component 3 (see the module docstring)."""
    if not mnemonic:
        return code_system(sender)
    if ":" in mnemonic:
        return mnemonic
    key = mnemonic.upper()
    if key in _SYSTEMS:
        return _SYSTEMS[key]
    table = _V2_TABLE.fullmatch(key)
    if table:
        return _V2_URL + table.group(1)
    return code_system(sender)


def mnemonic_for(system: str, sender: str) -> str:
    """Return the CE/CWE component 3 we write for a code system URI."""
    if system == code_system(sender):
        return "L"
    if system in _SYSTEMS_OUT:
        return _SYSTEMS_OUT[system]
    if system.startswith(_V2_URL) and system[len(_V2_URL) :].isdigit():
        return "HL7" + system[len(_V2_URL) :]
    return system
