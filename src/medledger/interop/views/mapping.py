"""Turn rows of a view into the neutral model: one row is one item; rows group into one message.

Rules, in the order they apply to each mapped model field of a row:

- A NULL or blank column (or an unmapped field) takes the connector's ``defaults`` entry, if any.
- ``values`` maps the raw value (as text, stripped: ``1``, ``男``) to the model value. A raw value
  missing from the map passes unchanged when it already is a valid model value (``male``);
  otherwise the row is quarantined.
- Text is stripped; numbers become their exact decimal text (``Decimal('5.60')`` → ``5.60``).
- Date-times: a naive ``DATETIME`` / ``timestamp`` is local time in UTC+8 (China has a single
  time zone and HIS databases store local time); an aware one keeps its offset. Text is read as
  ISO 8601, ``YYYYMMDDHHMMSS``, ``YYYY/MM/DD HH:MM:SS`` or a bare date. The model gets a FHIR
  dateTime, e.g. ``2024-05-06T08:30:00+08:00``.
- Dates of birth: ``date``, ``YYYY-MM-DD``, ``YYYYMMDD``, ``YYYY/MM/DD``, ``YYYY-MM`` or ``YYYY``.

Grouping (``group_by``) and the rule that each item keeps its own ``placer`` are described in
:mod:`medledger.interop.views`.

``control_id`` is ``<row key or group value>@<watermark>``: a row read again (lookback,
redelivery) keeps its control id and is recognised as a duplicate, while an updated row (its
watermark moved, e.g. 状态 changed to revoked) is a new message.

A row that cannot be mapped becomes a :class:`Quarantined` record and the rest of the batch goes
on. Its ``value`` is the offending value, which can be patient data (a malformed birth date):
store it sealed, like a quarantined HL7 message, and never log it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

from medledger.errors import InputError
from medledger.interop.model import (
    Coded,
    OrderItem,
    Patient,
    Requisition,
    Result,
    ResultItem,
    Value,
    code_system,
)
from medledger.interop.views.config import (
    REQUIRED,
    REQUISITION_FIELDS,
    RESULT_FIELDS,
    ConnectorConfig,
    FieldSpec,
)

__all__ = [
    "LOCAL_TZ",
    "Model",
    "Quarantined",
    "RowMapper",
    "fhir_date",
    "fhir_datetime",
    "parse_fhir_datetime",
    "plain_text",
]

LOCAL_TZ = timezone(timedelta(hours=8), "UTC+08:00")  # naive database date-times are this
Model = Requisition | Result
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE = re.compile(r"([0-9]{4})(?:[-/]?([0-9]{2})(?:[-/]?([0-9]{2}))?)?")
_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")
_CLIP = 200


class _Bad(Exception):
    """A value that cannot fill its field (caught inside this module only)."""

    def __init__(self, reason: str, expected: str) -> None:
        super().__init__(reason)
        self.reason, self.expected = reason, expected


@dataclass(frozen=True)
class Quarantined:
    """A row that could not be mapped: skipped, reported, and stored by the gateway.

    ``field`` is the model field and ``column`` the view column; ``value`` is the offending
    value as text (at most 200 characters; it may be patient data, see the module docstring).
    """

    connector: str
    row_key: str | int | None
    column: str | None
    field: str | None
    value: str | None
    reason: str
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form the gateway stores (sealed) with the quarantined row."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def plain_text(raw: Any) -> str:
    """Return a column value as stripped text: numbers exactly as stored, dates in ISO 8601."""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, Decimal):
        return format(raw, "f")
    if isinstance(raw, (int, float, date)):
        return raw.isoformat() if isinstance(raw, date) else str(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            return bytes(raw).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _Bad("bytes that are not UTF-8", "UTF-8 text (utf8mb4 columns)") from None
    raise _Bad(f"unsupported column type {type(raw).__name__}", "text, a number or a date")


def fhir_datetime(raw: Any) -> str:
    """Return a FHIR dateTime for a column value (naive date-times are UTC+8 local time)."""
    if isinstance(raw, datetime):
        aware = raw if raw.tzinfo is not None else raw.replace(tzinfo=LOCAL_TZ)
        return aware.isoformat(timespec="microseconds" if aware.microsecond else "seconds")
    if isinstance(raw, date):
        return raw.isoformat()
    text = plain_text(raw)
    if _DATE.fullmatch(text):
        return fhir_date(text)
    for fmt in _FORMATS:
        try:
            return fhir_datetime(datetime.strptime(text, fmt))  # naive: UTC+8 local
        except ValueError:
            continue
    try:
        return fhir_datetime(datetime.fromisoformat(text))
    except ValueError:
        raise _Bad("not a date-time", "a date-time like 2024-05-06 08:30:00") from None


def fhir_date(raw: Any) -> str:
    """Return a FHIR date (``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``) for a column value."""
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    m = _DATE.fullmatch(plain_text(raw))
    try:
        if m is None:
            raise ValueError
        year, month, day = m.group(1), m.group(2), m.group(3)
        date(int(year), int(month or 1), int(day or 1))  # checks the calendar
    except ValueError:
        raise _Bad("not a date", "a date like 1980-01-31, 19800131, 1980-01 or 1980") from None
    return "-".join(p for p in (year, month, day) if p)


def parse_fhir_datetime(text: str, field: str) -> datetime:
    """Parse a FHIR dateTime of the model into an aware datetime (a bare date is midnight UTC+8).

    Raises InputError naming ``field`` when ``text`` is not a dateTime.
    """
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        try:
            m = _DATE.fullmatch(text)
            if m is None:
                raise ValueError from None
            value = datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
        except ValueError:
            wanted = "a FHIR dateTime like 2024-05-06T08:30:00+08:00"
            raise InputError("not a dateTime", field=field, value=text, expected=wanted) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_TZ)


class RowMapper:
    """Map the rows of one connector's view (dicts keyed by the configured column names)."""

    def __init__(self, connector: ConnectorConfig) -> None:
        self._c = connector
        catalogue = REQUISITION_FIELDS if connector.kind == "requisitions" else RESULT_FIELDS
        wanted = set(connector.columns) | set(connector.defaults)
        self._fields: dict[str, FieldSpec] = {f: s for f, s in catalogue.items() if f in wanted}
        self._system = code_system(connector.institution)

    def extract(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        """Return each mapped model field's value for one row.

        Raises InputError (``field`` = model field, ``column`` in details) for a bad value or
        an empty required field.
        """
        out: dict[str, str | None] = {}
        for f, spec in self._fields.items():
            col = self._c.columns.get(f)
            raw = row.get(col) if col is not None else None
            try:
                out[f] = self._convert(f, spec, raw)
            except _Bad as bad:
                raise InputError(
                    f"column {col} cannot fill {f}: {bad.reason}",
                    field=f,
                    value=_clip(raw),
                    expected=bad.expected,
                    column=col,
                ) from None
            if out[f] is None and f in REQUIRED[self._c.kind]:
                msg, wanted = f"column {col} is empty but {f} is required", "a value or a default"
                raise InputError(msg, field=f, value=None, expected=wanted, column=col)
        return out

    def map_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Model], list[Quarantined]]:
        """Map a batch: the models in the order of their first row, and the quarantined rows."""
        groups: dict[str, tuple[dict[str, str | None], list[Any], str]] = {}
        quarantined: list[Quarantined] = []
        for row in rows:
            key = row.get(self._c.key)
            try:
                values = self.extract(row)
                gkey = _group_key(row, self._c.group_by, key)
                item = self._item(values)
                group = groups.get(gkey)
                if group is None:
                    groups[gkey] = (values, [] if item is None else [item], _mark(row, self._c))
                    continue
                self._check_same(group[0], values)
                self._check_new(group[1], item)
                if item is not None:
                    group[1].append(item)
                # Rows come sorted by (watermark, key): the last row has the group's newest mark.
                groups[gkey] = (group[0], group[1], _mark(row, self._c))
            except InputError as exc:
                col = exc.details.get("column")
                quarantined.append(
                    Quarantined(
                        connector=self._c.name,
                        row_key=key if isinstance(key, (str, int)) else _clip(key),
                        column=col if isinstance(col, str) else None,
                        field=exc.field,
                        value=_clip(exc.value),
                        reason=exc.message,
                        expected=exc.expected,
                    )
                )
        models = [
            self._build(values, items, f"{g}@{m}") for g, (values, items, m) in groups.items()
        ]
        return models, quarantined

    def _convert(self, f: str, spec: FieldSpec, raw: Any) -> str | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return self._c.defaults.get(f)
        table = self._c.values.get(f)
        if table is not None:
            text = plain_text(raw)
            if text in table:
                raw = table[text]
            elif spec.choices is not None and text not in spec.choices:
                known = ", ".join(list(table)[:12])
                raise _Bad("a value missing from the value map", f"one of {known}")
        if spec.choices is not None:
            text = plain_text(raw)
            if text not in spec.choices:
                raise _Bad("not a model value", "one of " + ", ".join(sorted(spec.choices)))
            return text
        if spec.kind == "datetime":
            return fhir_datetime(raw)
        if spec.kind == "date":
            return fhir_date(raw)
        return plain_text(raw) or None

    def _item(self, v: Mapping[str, str | None]) -> OrderItem | ResultItem | None:
        if self._c.kind == "requisitions":
            spec_code = v.get("item.specimen.code") or v.get("item.specimen.display")
            specimen = Coded(self._system, spec_code or "", v.get("item.specimen.display"))
            return OrderItem(
                placer=cast(str, v["placer"]),
                code=Coded(self._system, cast(str, v["item.code"]), v.get("item.display")),
                kind=cast(Any, v["item.kind"]),
                filler=v.get("item.filler"),
                barcode=v.get("item.barcode"),
                specimen_type=specimen if spec_code else None,
                collected=v.get("item.collected"),
                priority=cast(Any, v.get("item.priority") or "routine"),
                status=cast(Any, v.get("status") or "active"),
                note=v.get("item.note"),
                body_site=v.get("item.body_site"),
            )
        if not v.get("obs.code"):
            return None
        return ResultItem(
            code=Coded(self._system, cast(str, v["obs.code"]), v.get("obs.display")),
            value=_value(v.get("obs.value"), v.get("obs.unit")),
            status=cast(Any, v.get("obs.status") or v["status"]),
            reference_range=v.get("obs.reference_range"),
            interpretation=v.get("obs.flag"),
            observed=v.get("obs.observed"),
        )

    def _check_same(self, first: Mapping[str, str | None], v: Mapping[str, str | None]) -> None:
        for f in ("patient.id", "filler") if self._c.kind == "results" else ("patient.id",):
            if v.get(f) != first.get(f):
                raise InputError(
                    f"row names another {f} than its group's first row",
                    field=f,
                    value=None,  # the other row's value is patient data: not echoed
                    expected=f"the same {f} in every row of a {self._c.group_by} group",
                    column=self._c.columns.get(f),
                )

    def _check_new(self, items: list[Any], item: OrderItem | ResultItem | None) -> None:
        if isinstance(item, OrderItem) and any(i.placer == item.placer for i in items):
            raise InputError(
                "two items of one group have the same placer number",
                field="placer",
                value=item.placer,
                expected="an item-level placer number (unique per item)",
                column=self._c.columns.get("placer"),
            )

    def _build(self, v: Mapping[str, str | None], items: list[Any], control_id: str) -> Model:
        patient = Patient(
            id=cast(str, v["patient.id"]),
            name=v.get("patient.name"),
            sex=cast(Any, v.get("patient.sex")),
            birth_date=v.get("patient.birth_date"),
            national_id=v.get("patient.national_id"),
        )
        if self._c.kind == "requisitions":
            return Requisition(
                sender=self._c.institution,
                performer=self._c.performer,
                patient=patient,
                items=tuple(items),
                authored=cast(str, v["authored"]),
                requester=v.get("requester"),
                control_id=control_id,
                visit=v.get("visit"),
            )
        return Result(
            sender=self._c.institution,
            placer_institution=self._c.placer_institution,
            patient=patient,
            placer=v.get("placer"),
            filler=cast(str, v["filler"]),
            code=Coded(self._system, cast(str, v["code"]), v.get("display")),
            kind=cast(Any, v["kind"]),
            status=cast(Any, v["status"]),
            issued=cast(str, v["issued"]),
            items=tuple(items),
            conclusion=v.get("conclusion"),
            findings=v.get("findings"),
            performer_name=v.get("performer_name"),
            control_id=control_id,
            reason=v.get("reason"),
            barcode=v.get("barcode"),
        )


def _value(text: str | None, unit: str | None) -> Value | None:
    if text is None:
        return None
    if _NUMBER.fullmatch(text):
        return Value("quantity", number=text, unit=unit)
    return Value("text", text=text, unit=unit)


def _group_key(row: Mapping[str, Any], group_by: str | None, key: Any) -> str:
    raw = row.get(group_by) if group_by is not None else None
    text = plain_text(raw) if raw is not None else ""
    if text:
        return text
    if key is None:
        raise InputError("the row key is NULL", field="key", value=None, expected="a row key")
    return plain_text(key)


def _mark(row: Mapping[str, Any], c: ConnectorConfig) -> str:
    """The watermark as it appears in control ids (ISO 8601 or decimal; sorts within a type)."""
    raw = row.get(c.watermark)
    return raw.isoformat() if isinstance(raw, date) else str(raw)


def _clip(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = value if isinstance(value, str) else plain_text(value)
    except _Bad:
        text = repr(value)
    return text if len(text) <= _CLIP else text[:_CLIP] + "…"
