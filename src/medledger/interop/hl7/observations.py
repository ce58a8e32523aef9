"""Read the OBX segments of one result: items, image links, findings and conclusion.

Each OBX becomes exactly one of:

- **findings / conclusion** — a text OBX (OBX-2 ST, TX or FT) whose OBX-3 code or text is
  in :data:`FINDINGS` (LOINC 18782-3 and 59776-5, 检查所见, 影像所见, 超声所见, 镜下所见,
  内镜所见, 肉眼所见, 检查描述, 影像表现) or :data:`CONCLUSION` (LOINC 19005-8 and 22637-3,
  诊断意见, 检查结论, 诊断结论, 影像诊断, 超声提示, 超声诊断, 内镜诊断, 病理诊断, 印象).
  Several such OBX are joined by newlines in message order. This holds for every kind;
  exam reports (放射, 超声, 内镜, 病理) are where senders use it.
- **an image link** — OBX-2 RP (reference pointer ``pointer ^ application ^ type ^
  subtype``) or ED whose data (ED.5) is an http(s) URL. A URL whose path has
  ``/studies/<uid>`` is a DICOMweb WADO-RS study (kind ``wado-rs``, study uid from the path).
  Otherwise the type (RP.3 / ED.2) ``IM``, ``SI``, ``NS``, ``SD`` or ``image``, or a PDF, makes
  it ``report-image``, anything else ``viewer``. The content type is ``type/subtype`` when the
  type is a MIME top-level type (``image^jpeg`` → ``image/jpeg``), ``image/<subtype>`` for an
  HL7 image type with JPEG/PNG/GIF/TIFF/BMP, ``application/pdf`` for subtype PDF. An NTE after
  the OBX whose NTE-4.1 is ``content-hash`` carries the link's hash in NTE-3
  (``sha256:<64 hex>`` or ``sm3:<64 hex>``; another form is AE 102 naming NTE-3). ED with
  inline data is not supported: AE 102 naming OBX-5.
- **an item** (:class:`~medledger.interop.model.ResultItem`) otherwise, value by OBX-2:
  NM → quantity (OBX-5 must be a decimal, else AE 102; unit OBX-6.1, else 6.2); SN → a
  quantity when it is a bare number, else text (``<^0.1`` → ``<0.1``); ST, TX, FT → text
  (repetitions are lines, ``\\.br\\`` is a newline); CE, CWE, CNE → coded; DT, TM, TS, DTM →
  text as sent. An empty OBX-5 gives no value. Another OBX-2 is AE 103.

Item fields: OBX-3 code (required, AE 101), OBX-7 reference range, OBX-8 abnormal flag
(first repetition), OBX-11 status (table 0085: F U → final, C → corrected, W D →
entered-in-error, P R S → preliminary, I O → registered, X N → cancelled; empty → the
report's status; another → AE 103), OBX-14 observed time (AE 102 when malformed).
OBX-4 (sub-id) is not kept: the model has no place for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from medledger.interop.hl7.datatypes import is_number
from medledger.interop.hl7.fields import coded, lookup, time_field
from medledger.interop.hl7.groups import Observed
from medledger.interop.hl7.segments import Seg
from medledger.interop.hl7.vocab import ITEM_STATUS
from medledger.interop.model import ImageLink, ResultItem, ResultStatus, Value

__all__ = ["CONCLUSION", "FINDINGS", "Observations", "read_observations"]

FINDINGS = frozenset(
    {
        "18782-3",
        "59776-5",
        "检查所见",
        "影像所见",
        "超声所见",
        "镜下所见",
        "内镜所见",
        "肉眼所见",
        "检查描述",
        "影像表现",
    }
)
CONCLUSION = frozenset(
    {
        "19005-8",
        "22637-3",
        "诊断意见",
        "检查结论",
        "诊断结论",
        "影像诊断",
        "超声提示",
        "超声诊断",
        "内镜诊断",
        "病理诊断",
        "印象",
    }
)
_TEXT = frozenset({"ST", "TX", "FT"})
_CODED = frozenset({"CE", "CWE", "CNE"})
_TIMES = frozenset({"DT", "TM", "TS", "DTM"})
_LINKS = frozenset({"RP", "ED"})
_ACCEPTED = "NM SN ST TX FT CE CWE CNE DT TM TS DTM RP ED"
_STUDY = re.compile(r"/studies/([^/?#]+)")
_HASH = re.compile(r"(sha256|sm3):[0-9a-f]{64}")
_IMAGE_TYPES = frozenset({"IM", "SI", "NS", "SD", "IMAGE"})
_MIME_TOPS = frozenset({"image", "application", "text", "video", "audio", "multipart", "model"})
_MIME_TOKEN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*")
_IMAGE_SUBTYPES = frozenset({"jpeg", "png", "gif", "tiff", "bmp"})


@dataclass
class Observations:
    """What the OBX segments of one result hold."""

    items: list[ResultItem] = field(default_factory=list)
    images: list[ImageLink] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    conclusion: list[str] = field(default_factory=list)
    withdrawn: int = 0  # how many OBX have OBX-11 W or D
    count: int = 0  # how many OBX there are


def read_observations(
    observed: list[Observed], sender: str, fallback: ResultStatus
) -> Observations:
    """Read every OBX of one OBR group; ``fallback`` is the status of an empty OBX-11."""
    out = Observations()
    for entry in observed:
        obx = entry.obx
        out.count += 1
        status = _status(obx, fallback)
        if (obx.comp(11) or "").upper() in ("W", "D"):
            out.withdrawn += 1
        code = coded(obx, 3, sender, what="observation identifier", required=True)
        assert code is not None
        vtype = (obx.comp(2) or "").upper()
        if vtype in _TEXT and {code.code, code.display} & (FINDINGS | CONCLUSION):
            text = obx.text(5)
            if text is not None:
                section = out.findings if {code.code, code.display} & FINDINGS else out.conclusion
                section.append(text)
            continue
        if vtype in _LINKS:
            link = _link(obx, vtype, entry.notes)
            if link is not None:
                out.images.append(link)
            continue
        out.items.append(
            ResultItem(
                code=code,
                value=_value(obx, vtype, sender),
                status=status,
                reference_range=obx.text(7),
                interpretation=obx.comp(8),
                observed=time_field(obx, 14, "observation date/time"),
            )
        )
    return out


def _status(obx: Seg, fallback: ResultStatus) -> ResultStatus:
    """Return an item's status from OBX-11, or ``fallback`` when empty."""
    raw = obx.comp(11)
    if raw is None:
        return "preliminary" if fallback == "partial" else fallback
    return lookup(
        obx,
        11,
        ITEM_STATUS,
        raw.upper(),
        "the observation result status is not a known code",
        value=raw,
        expected=" ".join(ITEM_STATUS),
    )


def _value(obx: Seg, vtype: str, sender: str) -> Value | None:
    """Return the value of an item OBX by its value type."""
    if obx.text(5) is None:
        return None
    if not vtype:
        raise obx.fail(2, "the value type is required when OBX-5 has a value", expected=_ACCEPTED)
    if vtype == "NM":
        number = obx.comp(5) or ""
        if not is_number(number.strip()):
            raise obx.fail(
                5,
                "a numeric (NM) value is not a decimal number",
                code="102",
                value=number,
                expected="a decimal number such as 5.20",
            )
        return Value("quantity", number=number.strip(), unit=_unit(obx))
    if vtype == "SN":
        parts = [obx.comp(5, c) or "" for c in (1, 2, 3, 4)]
        if parts[0] in ("", "=") and not parts[2] and not parts[3] and is_number(parts[1]):
            return Value("quantity", number=parts[1], unit=_unit(obx))
        return Value("text", text="".join(parts))
    if vtype in _TEXT:
        return Value("text", text=obx.text(5))
    if vtype in _CODED:
        value = coded(obx, 5, sender, what="coded value")
        return Value("coded", code=value) if value is not None else None
    if vtype in _TIMES:
        return Value("text", text=obx.comp(5))
    raise obx.fail(
        2, "the value type is not one we read", code="103", value=vtype, expected=_ACCEPTED
    )


def _unit(obx: Seg) -> str | None:
    """Return the unit of OBX-6 (its code, else its text)."""
    return obx.comp(6, 1) or obx.comp(6, 2)


def _link(obx: Seg, vtype: str, notes: list[Seg]) -> ImageLink | None:
    """Return the ImageLink of an RP or ED OBX, None when it has no URL."""
    if vtype == "RP":
        url, kind_of_data, subtype = obx.comp(5, 1), obx.comp(5, 3), obx.comp(5, 4)
    else:
        url, kind_of_data, subtype = obx.comp(5, 5), obx.comp(5, 2), obx.comp(5, 3)
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise obx.fail(
                5,
                "inline encapsulated data (ED) is not supported",
                code="102",
                expected="an RP reference pointer, or ED whose data is a URL",
            )
    if url is None:
        return None
    content_type = _content_type(kind_of_data, subtype)
    study = _STUDY.search(url)
    kind: Literal["wado-rs", "viewer", "report-image"]
    if study is not None:
        kind = "wado-rs"
    elif (kind_of_data or "").upper() in _IMAGE_TYPES or content_type == "application/pdf":
        kind = "report-image"
    else:
        kind = "viewer"
    return ImageLink(
        url=url,
        kind=kind,
        study_uid=study.group(1) if study is not None else None,
        content_hash=_content_hash(notes),
        content_type=content_type,
    )


def _content_type(kind_of_data: str | None, subtype: str | None) -> str | None:
    """Return the MIME type named by a type of data and subtype, if any."""
    top, sub = (kind_of_data or "").lower(), (subtype or "").lower()
    if not _MIME_TOKEN.fullmatch(sub):
        return None
    if top in _MIME_TOPS:
        return f"{top}/{sub}"
    if top.upper() in _IMAGE_TYPES and sub in _IMAGE_SUBTYPES | {"jpg"}:
        return "image/jpeg" if sub == "jpg" else f"image/{sub}"
    return "application/pdf" if sub == "pdf" else None


def _content_hash(notes: list[Seg]) -> str | None:
    """Return the hash from a content-hash NTE after the OBX, if any."""
    for nte in notes:
        if (nte.comp(4, 1) or "").lower() != "content-hash":
            continue
        value = (nte.text(3) or "").strip()
        if not _HASH.fullmatch(value):
            raise nte.fail(
                3,
                "the content hash is not in the form algorithm:hex",
                code="102",
                value=value,
                expected="sha256:<64 hex> or sm3:<64 hex>",
            )
        return value
    return None
