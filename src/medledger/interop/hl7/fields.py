"""Read the composite fields orders and results share: codes, times, patients, facilities.

Patient (PID):

- PID-3 (CX, repeating): the patient id is component 1 of the first repetition whose
  identifier type (CX.5) is not a national one; the national id (身份证号) is the first
  repetition typed ``ID``, ``NI`` or ``NNCHN``, else PID-19;
- PID-5 (XPN): family name (5.1, first subcomponent) joined with the given name (5.2) —
  Chinese senders usually put the whole name in 5.1;
- PID-7: birth date, ``YYYYMMDD[HHMM…]`` → ``YYYY-MM-DD`` (or ``YYYY-MM`` / ``YYYY``);
- PID-8: sex, see :data:`medledger.interop.hl7.vocab.SEX`.

Missing PID-3 is AE 101; a bad PID-7 is AE 102; an unknown PID-8 is AE 103. Error messages
never repeat patient values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, TypeVar, cast

from medledger.errors import MessageRejected
from medledger.interop.hl7.datatypes import join_name, to_date, to_datetime, to_instant
from medledger.interop.hl7.segments import Seg
from medledger.interop.hl7.senders import SenderMap
from medledger.interop.hl7.vocab import KIND_CODES, SEX, kind_for, system_for
from medledger.interop.model import Coded, Kind, Patient

__all__ = [
    "NATIONAL_ID_TYPES",
    "coded",
    "facility_of",
    "hd_names",
    "kind_of",
    "lookup",
    "no_segment",
    "person",
    "read_patient",
    "require_kind",
    "require_time",
    "sending_facility",
    "service",
    "sub_coded",
    "time_field",
]

NATIONAL_ID_TYPES = frozenset({"ID", "NI", "NNCHN"})
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")  # FHIR code
_Sex = Literal["male", "female", "other", "unknown"]
_V = TypeVar("_V")


def coded(seg: Seg, n: int, sender: str, *, what: str, required: bool = False) -> Coded | None:
    """Read a CE/CWE field (``code ^ text ^ system``) as a Coded in ``sender``'s terms.

    A field with text but no code uses the text as its code; ``required`` rejects (101) an
    empty code. A code with leading, trailing or repeated white space is not a FHIR code: 102.
    """
    code, text = seg.comp(n, 1), seg.comp(n, 2)
    if code is None:
        if required:
            raise seg.fail(
                n,
                f"the {what} code (component 1) is required but empty",
                expected=f"{what} as code^text^coding system",
            )
        if text is None:
            return None
        code = text
    return Coded(system_for(seg.comp(n, 3), sender), _fhir_code(seg, n, code, what), text)


def sub_coded(seg: Seg, n: int, comp: int, sender: str) -> Coded | None:
    """Read a CWE held in subcomponents of one component (e.g. OBR-15.1, SPS)."""
    code, text = seg.get(n, comp, 1), seg.get(n, comp, 2)
    if code is None and text is None:
        return None
    value = _fhir_code(seg, n, code or cast(str, text), "specimen source")
    return Coded(system_for(seg.get(n, comp, 3), sender), value, text)


def _fhir_code(seg: Seg, n: int, code: str, what: str) -> str:
    """Return ``code`` when it is a valid FHIR code, else reject (102)."""
    if _CODE.fullmatch(code) is None:
        raise seg.fail(
            n,
            f"the {what} code has leading, trailing or repeated white space",
            code="102",
            value=code,
            expected="a code whose words are separated by single spaces",
        )
    return code


def time_field(seg: Seg, n: int, what: str, *, instant: bool = False, comp: int = 1) -> str | None:
    """Read a TS field as a FHIR dateTime (or instant); reject (102) text that is not one."""
    raw = seg.comp(n, comp)
    if raw is None:
        return None
    value = to_instant(raw) if instant else to_datetime(raw)
    if value is None:
        raise seg.fail(
            n,
            f"the {what} is not an HL7 date/time",
            code="102",
            value=raw,
            expected="YYYYMMDD[HHMM[SS[.S]]][+ZZZZ]" if not instant else "YYYYMMDDHHMM[SS][+ZZZZ]",
        )
    return value


def person(seg: Seg, n: int) -> str | None:
    """Read an XCN (ORC-12) or CNN-in-NDL (OBR-32) name: family+given, else the id."""
    family, given, ident = seg.get(n, 2), seg.get(n, 3), seg.get(n, 1)
    if seg.name == "OBR":  # NDL: the name is subcomponents of component 1
        family, given, ident = seg.get(n, 1, 2), seg.get(n, 1, 3), seg.get(n, 1, 1)
    return join_name(family, given) or ident


def hd_names(seg: Seg, n: int, comp: int | None = None) -> list[str | None]:
    """Return the namespace id and universal id of an HD field (or of an HD component)."""
    if comp is None:
        return [seg.comp(n, 1), seg.comp(n, 2)]
    return [seg.get(n, comp, 1), seg.get(n, comp, 2)]


def facility_of(
    seg: Seg, senders: SenderMap, *, ack: str = "AR", required: bool = True
) -> tuple[str | None, int | None]:
    """Resolve the facility of an ORC (ORC-21, else ORC-13.4) or an MSH (MSH-4).

    Return ``(institution, field position)``; ``(None, None)`` when the segment names none.
    A named but unknown facility is rejected (103) when ``required``, else gives None.
    """
    if seg.name == "MSH":
        candidates = [(4, hd_names(seg, 4))]
    else:
        candidates = [(21, [seg.comp(21, 1), seg.comp(21, 10)]), (13, hd_names(seg, 13, 4))]
    for position, names in candidates:
        if not any(names):
            continue
        found = senders.lookup(names)
        if found is None and required:
            raise seg.fail(
                position,
                "the facility is not one we know",
                code="103",
                ack=ack,
                value=" / ".join(x for x in names if x),
                expected="a facility configured in the sender map",
            )
        return found, position
    return None, None


def sending_facility(msh: Seg, senders: SenderMap) -> str:
    """Return the institution of MSH-4; reject (AR) an empty or (AR 103) an unknown one."""
    found, _ = facility_of(msh, senders)
    if found is None:
        raise msh.fail(
            4,
            "the sending facility is required but empty",
            ack="AR",
            expected="a facility configured in the sender map",
        )
    return found


def lookup(
    seg: Seg, n: int, table: Mapping[str, _V], key: str, problem: str, *, value: str, expected: str
) -> _V:
    """Return ``table[key]``; reject (AE 103 naming field ``n``) a key the table lacks.

    ``problem`` is the error's text after the field name and ``value`` the code as sent.
    """
    mapped = table.get(key)
    if mapped is None:
        raise seg.fail(n, problem, code="103", value=value, expected=expected)
    return mapped


def read_patient(pid: Seg) -> Patient:
    """Read the patient of a PID segment (see the module docstring)."""
    ids: list[tuple[str, str]] = []
    for rep in range(1, pid.reps(3) + 1):
        value = pid.comp(3, 1, rep)
        if value is not None:
            ids.append((value, (pid.comp(3, 5, rep) or "").upper()))
    local = [v for v, t in ids if t not in NATIONAL_ID_TYPES]
    national = [v for v, t in ids if t in NATIONAL_ID_TYPES]
    if not ids:
        raise pid.fail(
            3, "the patient identifier is required but empty", expected="a patient id in PID-3.1"
        )
    patient_id = local[0] if local else ids[0][0]
    national_id = national[0] if national else pid.comp(19)
    name = join_name(pid.get(5, 1, 1), pid.comp(5, 2))
    birth = None
    raw_birth = pid.comp(7)
    if raw_birth is not None:
        birth = to_date(raw_birth)
        if birth is None:
            raise pid.fail(
                7,
                "the birth date is not an HL7 date",
                code="102",
                value=raw_birth,
                expected="YYYYMMDD",
            )
    sex: _Sex | None = None
    raw_sex = pid.comp(8)
    if raw_sex is not None:
        mapped = lookup(
            pid,
            8,
            SEX,
            raw_sex.strip().upper(),
            "the administrative sex is not a known code",
            value=raw_sex,
            expected="M, F, O, U, 1, 2, 0, 9, 男 or 女",
        )
        sex = cast(_Sex, mapped)
    return Patient(patient_id, name, sex, birth, national_id)


def kind_of(obr: Seg, code: str) -> Kind | None:
    """Return the kind of an OBR group by the kind rule, None when it gives none."""
    return kind_for(obr.comp(24), code, obr.comp(4, 3))


def require_kind(obr: Seg, code: str) -> Kind:
    """Return the kind of an OBR group; reject (AE 101 or 103 naming OBR-24) when none."""
    kind = kind_of(obr, code)
    if kind is not None:
        return kind
    section = obr.comp(24)
    accepted = " ".join(KIND_CODES)
    if section is None:
        raise obr.fail(
            24,
            "the diagnostic service section is required to tell the kind",
            expected=f"one of {accepted}",
        )
    raise obr.fail(
        24,
        "the diagnostic service section is not one we know",
        code="103",
        value=section,
        expected=f"one of {accepted}",
    )


def service(obr: Seg, sender: str) -> tuple[Coded, Kind]:
    """Return the universal service id (OBR-4, required: AE 101) and the kind of its group."""
    code = coded(obr, 4, sender, what="universal service id", required=True)
    assert code is not None
    return code, require_kind(obr, code.code)


def require_time(seg: Seg, n: int, what: str, *, instant: bool = False) -> str:
    """Read a required TS field; reject (101) when empty."""
    value = time_field(seg, n, what, instant=instant)
    if value is None:
        raise seg.fail(n, f"the {what} is required but empty", expected="an HL7 date/time")
    return value


def no_segment(name: str, what: str, *, sequence: int = 1) -> MessageRejected:
    """Build the rejection for a required segment that is missing (AE, 100)."""
    return MessageRejected(
        f"{name}: {what}",
        ack_code="AE",
        segment=name,
        sequence=sequence,
        hl7_error="100",
        expected=f"a {name} segment",
    )
