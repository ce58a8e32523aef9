"""Load and validate the YAML configuration of SQL-view connectors and of the bridge database.

A file holds ``connectors:`` (inbound views the gateway polls) and optionally ``exposed:`` (the
bridge database where the gateway writes requisitions and results for systems that read tables).
Every problem raises :class:`~medledger.errors.InputError` whose ``field`` is the key path, e.g.
``connectors[0].columns.item.kind``, whose ``value`` is what the file said and whose ``expected``
says what was wanted. Only ``url`` values expand ``${ENV_VAR}``, and a URL's password never
appears in an error, a ``repr`` or a log: use :attr:`ConnectorConfig.redacted_url`.
The mappable model fields are :data:`REQUISITION_FIELDS` and :data:`RESULT_FIELDS`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from medledger.errors import InputError
from medledger.interop.model import KINDS

__all__ = [
    "REQUIRED",
    "REQUISITION_FIELDS",
    "RESULT_FIELDS",
    "ConnectorConfig",
    "ExposedConfig",
    "FieldSpec",
    "ViewsConfig",
    "load_config",
    "parse_config",
    "parse_duration",
    "redact_url",
]

WatermarkType = Literal["datetime", "date", "integer"]


@dataclass(frozen=True)
class FieldSpec:
    """How a model field's value is read: as text, a date-time, a date, or one of ``choices``."""

    kind: Literal["text", "datetime", "date"] = "text"
    choices: frozenset[str] | None = None


_TEXT, _DT = FieldSpec(), FieldSpec("datetime")
_SEX = FieldSpec(choices=frozenset({"male", "female", "other", "unknown"}))
_KIND = FieldSpec(choices=frozenset(KINDS))
_RESULT_STATUS = FieldSpec(choices=frozenset({
    "registered", "partial", "preliminary", "final", "amended", "corrected", "cancelled",
    "entered-in-error"}))  # fmt: skip
_PATIENT = {
    "patient.id": _TEXT, "patient.name": _TEXT, "patient.sex": _SEX,
    "patient.birth_date": FieldSpec("date"), "patient.national_id": _TEXT,
}  # fmt: skip

# Model fields of a requisitions connector: one row is one OrderItem.
REQUISITION_FIELDS: dict[str, FieldSpec] = {
    "placer": _TEXT, "authored": _DT, "requester": _TEXT, "visit": _TEXT,
    "status": FieldSpec(choices=frozenset({"active", "revoked", "on-hold", "completed"})),
    **_PATIENT,
    "item.code": _TEXT, "item.display": _TEXT, "item.kind": _KIND, "item.filler": _TEXT,
    "item.barcode": _TEXT, "item.specimen.code": _TEXT, "item.specimen.display": _TEXT,
    "item.collected": _DT, "item.note": _TEXT, "item.body_site": _TEXT,
    "item.priority": FieldSpec(choices=frozenset({"routine", "urgent", "asap", "stat"})),
}  # fmt: skip

# Model fields of a results connector: one row is one Result, or one observation of it.
RESULT_FIELDS: dict[str, FieldSpec] = {
    "filler": _TEXT, "placer": _TEXT, **_PATIENT,
    "code": _TEXT, "display": _TEXT, "kind": _KIND, "status": _RESULT_STATUS, "issued": _DT,
    "conclusion": _TEXT, "findings": _TEXT, "performer_name": _TEXT, "barcode": _TEXT,
    "reason": _TEXT,
    "obs.code": _TEXT, "obs.display": _TEXT, "obs.value": _TEXT, "obs.unit": _TEXT,
    "obs.reference_range": _TEXT, "obs.flag": _TEXT, "obs.status": _RESULT_STATUS,
    "obs.observed": _DT,
}  # fmt: skip

# Fields that need a column or a default, per connector kind.
REQUIRED: dict[str, tuple[str, ...]] = {
    "requisitions": ("placer", "patient.id", "item.code", "item.kind", "authored"),
    "results": ("filler", "patient.id", "code", "kind", "status", "issued"),
}

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
_IDENT = re.compile(r"[^\W\d]\w{0,127}")
_INSTITUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONNECTOR_KEYS = frozenset({
    "name", "kind", "institution", "performer", "placer_institution", "url", "view", "watermark",
    "watermark_type", "key", "group_by", "batch", "interval", "lookback", "columns", "values",
    "defaults"})  # fmt: skip


@dataclass(frozen=True)
class ConnectorConfig:
    """One inbound view connector. ``index`` is its position in the file (for error paths).

    ``columns`` maps model field → view column; ``values`` maps model field → {raw value →
    model value}; ``defaults`` maps model field → the value used when the column is unmapped,
    NULL or blank. ``lookback`` is a ``timedelta`` for datetime and date watermarks and an
    ``int`` for integer ones.
    """

    name: str
    kind: Literal["requisitions", "results"]
    institution: str
    url: str = field(repr=False)
    view: str
    watermark: str
    key: str
    columns: Mapping[str, str]
    performer: str | None = None
    placer_institution: str | None = None
    watermark_type: WatermarkType = "datetime"
    group_by: str | None = None
    batch: int = 500
    interval: float = 5.0
    lookback: timedelta | int = timedelta(0)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    index: int = 0

    @property
    def redacted_url(self) -> str:
        """The source URL with its password hidden: the only form that may be shown or logged."""
        return redact_url(self.url)

    def path(self, *keys: str) -> str:
        """The error path of a key of this connector, e.g. ``connectors[0].columns.placer``."""
        return ".".join((f"connectors[{self.index}]", *keys))


@dataclass(frozen=True)
class ExposedConfig:
    """The bridge database the gateway writes for readers of tables (see ``exposed.py``)."""

    url: str = field(repr=False)
    expose_patient_name: bool = False

    @property
    def redacted_url(self) -> str:
        """The bridge URL with its password hidden."""
        return redact_url(self.url)


@dataclass(frozen=True)
class ViewsConfig:
    """A whole configuration file."""

    connectors: tuple[ConnectorConfig, ...]
    exposed: ExposedConfig | None = None


def redact_url(url: str) -> str:
    """Return ``url`` with its password hidden (or only its host part if it is unparsable)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable URL)@" + url.rsplit("@", 1)[-1] if "@" in url else "(unparsable URL)"


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> ViewsConfig:
    """Read and validate the YAML file at ``path``; ``environ`` fills ``${VAR}`` in URLs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the views configuration: {type(exc).__name__}"
        wanted = "a readable UTF-8 YAML file"
        raise InputError(msg, field="config", value=str(path), expected=wanted) from exc
    return parse_config(text, environ=environ)


def parse_config(
    source: str | Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> ViewsConfig:
    """Validate a configuration given as YAML text or as an already-parsed mapping."""
    env = os.environ if environ is None else environ
    doc: Any = source
    if isinstance(source, str):
        try:
            doc = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
            msg = f"the views configuration is not valid YAML ({where or 'unknown position'})"
            raise InputError(msg, field="config", value=where, expected="valid YAML") from exc
    root = _mapping(doc, "config", {"connectors", "exposed"})
    items = root.get("connectors")
    if not isinstance(items, list) or not items:
        _bad("no connectors", "connectors", items, "a non-empty list of connectors")
    connectors = tuple(_connector(raw, i, env) for i, raw in enumerate(items))
    seen: dict[str, int] = {}
    for c in connectors:
        if c.name in seen:
            wanted = f"a name unlike connectors[{seen[c.name]}]'s"
            _bad(f"connector name {c.name!r} is used twice", c.path("name"), c.name, wanted)
        seen[c.name] = c.index
    exposed = None
    if root.get("exposed") is not None:
        ex = _mapping(root["exposed"], "exposed", {"url", "expose_patient_name"})
        flag = ex.get("expose_patient_name", False)
        if not isinstance(flag, bool):
            _bad("not a boolean", "exposed.expose_patient_name", flag, "true or false")
        exposed = ExposedConfig(_url(ex.get("url"), "exposed.url", env), flag)
    return ViewsConfig(connectors, exposed)


def parse_duration(value: Any, path: str, *, positive: bool = True) -> float:
    """Return seconds for ``5s``, ``500ms``, ``2m``, ``1h`` or a plain number of seconds."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    wanted = "a duration > 0 like 5s, 500ms, 2m, 1h" if positive else "a duration ≥ 0 like 60s"
    if seconds is None or seconds != seconds or not 0 <= seconds <= 86400 * 366:
        _bad("not a duration in range", path, value, wanted)
    if positive and seconds == 0:
        _bad("the duration must be positive", path, value, wanted)
    return seconds


def _connector(raw: Any, i: int, env: Mapping[str, str]) -> ConnectorConfig:
    at = f"connectors[{i}]"
    m = _mapping(raw, at, set(raw) if isinstance(raw, Mapping) else set())
    name = _string(m, "name", at, _NAME, "lowercase letters, digits and '-' (at most 100)")
    try:
        return _body(_mapping(m, at, _CONNECTOR_KEYS), name, at, i, env)
    except InputError as exc:  # say which connector, not only its position
        msg = f"connector {name!r}: {exc.message}"
        raise InputError(msg, field=exc.field, value=exc.value, expected=exc.expected) from None


def _body(
    m: Mapping[str, Any], name: str, at: str, i: int, env: Mapping[str, str]
) -> ConnectorConfig:
    kind = _choice(m, "kind", at, ("requisitions", "results"), None)
    inst = "an institution id like hosp-member-east"
    institution = _string(m, "institution", at, _INSTITUTION, inst)
    other, wrong = ("performer", "placer_institution")[:: 1 if kind == "requisitions" else -1]
    if wrong in m:
        _bad(f"{wrong} does not apply to {kind}", f"{at}.{wrong}", m[wrong], f"{other} instead")
    partner = _string(m, other, at, _INSTITUTION, inst) if m.get(other) is not None else None
    view = _string(m, "view", at, None, "a view name, optionally schema.view")
    if view.count(".") > 1 or not all(_IDENT.fullmatch(p) for p in view.split(".")):
        _bad("bad view name", f"{at}.view", view, "an identifier or schema.identifier")
    ident = "a column name (letters, digits, _)"
    wm = _string(m, "watermark", at, _IDENT, ident)
    key = _string(m, "key", at, _IDENT, ident)
    group_by = _string(m, "group_by", at, _IDENT, ident) if "group_by" in m else None
    wm_type = _choice(m, "watermark_type", at, ("datetime", "date", "integer"), "datetime")
    batch = m.get("batch", 500)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 50_000:
        _bad("bad batch size", f"{at}.batch", batch, "an integer from 1 to 50000")
    interval = parse_duration(m.get("interval", "5s"), f"{at}.interval")
    lookback = _lookback(m.get("lookback", 0), f"{at}.lookback", integer=wm_type == "integer")
    fields = REQUISITION_FIELDS if kind == "requisitions" else RESULT_FIELDS
    columns = _field_map(m.get("columns"), f"{at}.columns", fields, required=True)
    for f, col in columns.items():
        if not _IDENT.fullmatch(col):
            _bad("bad column name", f"{at}.columns.{f}", col, ident)
    defaults = _field_map(m.get("defaults"), f"{at}.defaults", fields)
    values = _values(m.get("values"), f"{at}.values", fields)
    for f, v in defaults.items():
        _check_choice(fields[f], v, f"{at}.defaults.{f}")
    for f in REQUIRED[kind]:
        if f not in columns and f not in defaults:
            wanted = "a column name (or an entry under defaults)"
            _bad(f"required model field {f} is not mapped", f"{at}.columns.{f}", None, wanted)
    if kind == "results" and any(f.startswith("obs.") for f in columns) != ("obs.code" in columns):
        wanted = "a column for obs.code when any obs.* field is mapped"
        _bad("observation fields need obs.code", f"{at}.columns.obs.code", None, wanted)
    url = _url(m.get("url"), f"{at}.url", env)
    performer, placer_inst = (partner, None) if kind == "requisitions" else (None, partner)
    return ConnectorConfig(
        name=name, kind=kind, institution=institution, url=url, view=view, watermark=wm, key=key,
        columns=columns, performer=performer, placer_institution=placer_inst,
        watermark_type=wm_type, group_by=group_by, batch=batch, interval=interval,
        lookback=lookback, values=values, defaults=defaults, index=i,
    )  # fmt: skip


def _lookback(raw: Any, path: str, *, integer: bool) -> timedelta | int:
    if not integer:
        return timedelta(seconds=parse_duration(raw, path, positive=False))
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        _bad("bad lookback", path, raw, "an integer ≥ 0 in watermark units (integer watermark)")
    return raw


def _field_map(
    raw: Any, at: str, fields: Mapping[str, FieldSpec], *, required: bool = False
) -> dict[str, str]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        _bad("expected a mapping of model field to value", at, raw, "a mapping like {placer: sqdh}")
    out: dict[str, str] = {}
    for f, v in raw.items():
        _known(f, fields, f"{at}.{f}")
        if not isinstance(v, (str, int)) or isinstance(v, bool) or not str(v).strip():
            _bad("expected a non-empty text value", f"{at}.{f}", v, "a column name or text")
        out[f] = str(v).strip()
    return out


def _values(raw: Any, at: str, fields: Mapping[str, FieldSpec]) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        _bad("values must map model fields to value maps", at, raw, '{patient.sex: {"1": male}}')
    out: dict[str, dict[str, str]] = {}
    for f, table in raw.items():
        _known(f, fields, f"{at}.{f}")
        if not isinstance(table, Mapping) or not table:
            _bad("a value map must be a non-empty mapping", f"{at}.{f}", table, '{"1": male}')
        mapped: dict[str, str] = {}
        for k, v in table.items():
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                _bad("a mapped value must be text", f"{at}.{f}", v, "a text value")
            _check_choice(fields[f], str(v), f"{at}.{f}")
            mapped[str(k).strip()] = str(v)
        out[f] = mapped
    return out


def _known(f: Any, fields: Mapping[str, FieldSpec], path: str) -> None:
    if f not in fields:
        _bad("unknown model field", path, f, "one of " + ", ".join(fields))


def _check_choice(spec: FieldSpec, value: str, path: str) -> None:
    if spec.choices is not None and value not in spec.choices:
        wanted = "one of " + ", ".join(sorted(spec.choices))
        _bad("not a value of this model field", path, value, wanted)


def _url(raw: Any, path: str, env: Mapping[str, str]) -> str:
    wanted = "a SQLAlchemy URL like mysql+pymysql://user:${PASSWORD}@host:3306/db"
    if not isinstance(raw, str) or not raw.strip():
        _bad("a database URL is required", path, None if raw is None else "(not text)", wanted)

    def expand(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            wanted = f"{m.group(1)} set in the environment"
            _bad(f"environment variable {m.group(1)} is not set", path, m.group(0), wanted)
        return env[m.group(1)]

    url = _ENV.sub(expand, raw.strip())
    try:
        make_url(url).port  # noqa: B018 - a non-numeric port raises here
    except (ArgumentError, ValueError) as exc:
        raise InputError(
            "cannot parse the database URL", field=path, value=redact_url(url), expected=wanted
        ) from exc
    return url


def _mapping(raw: Any, at: str, allowed: frozenset[str] | set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _bad("expected a mapping", at, raw, "a YAML mapping")
    for k in raw:
        if k not in allowed:
            _bad(f"unknown key {k!r}", f"{at}.{k}", k, "one of " + ", ".join(sorted(allowed)))
    return raw


def _string(
    m: Mapping[str, Any], key: str, at: str, pattern: re.Pattern[str] | None, wanted: str
) -> str:
    v = m.get(key)
    if not isinstance(v, str) or not v.strip() or (pattern and not pattern.fullmatch(v.strip())):
        _bad(f"bad or missing {key}", f"{at}.{key}", v, wanted)
    return v.strip()


def _choice(m: Mapping[str, Any], key: str, at: str, options: tuple[str, ...], default: Any) -> Any:
    v = m.get(key, default)
    if v not in options:
        _bad(f"unknown {key}", f"{at}.{key}", v, " or ".join(options))
    return v


def _bad(message: str, path: str, value: Any, expected: str) -> NoReturn:
    """Raise the InputError of one bad key: what the file said is shown short."""
    if not (value is None or isinstance(value, (str, int, float, bool))):
        value = f"(a {type(value).__name__})"
    raise InputError(message, field=path, value=value, expected=expected)
