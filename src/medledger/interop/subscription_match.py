"""FHIR R4 Subscriptions (rest-hook): check one, read its channel, match a resource against it.

A Subscription the member hospital registers (``POST /fhir/R4/Subscription``) reads::

    {"resourceType": "Subscription", "status": "requested", "reason": "检验报告回传",
     "criteria": "DiagnosticReport?status=final,corrected,amended,entered-in-error",
     "channel": {"type": "rest-hook", "endpoint": "https://his.member-east.example/hook",
                 "payload": "application/fhir+json", "header": ["X-Hospital: hosp-member-east"],
                 "extension": [{"url": "urn:medledger:subscription-secret",
                                "valueString": "<the HMAC key, at least 32 characters>"}]}}

What :func:`check_subscription` holds it to (beyond the R4 validation the records layer runs):

- ``status`` is ``requested``, ``active``, ``off`` or ``error``;
- ``criteria`` is ``<Type>`` or ``<Type>?<search>``: a type this node serves (but not
  Subscription itself: a hub that writes Subscriptions must not notify about them), and search
  parameters the records layer supports for it; ``_count``, ``_sort``, ``_total`` and
  ``_page_token`` are refused (a criteria is a filter, not a page);
- ``channel.type`` is ``rest-hook`` (the only channel this node sends);
- ``channel.endpoint`` is an absolute ``http(s)`` URL with a host and no user name or password,
  at most 255 characters (the width of the search index it is found by);
- ``channel.payload`` is ``application/fhir+json`` or absent (absent: an empty notification;
  R4's subscriber then queries for what changed);
- each ``channel.header`` is ``Name: value`` with an HTTP token name and no control characters;
  the headers the delivery sets itself (content type, signature, idempotency key, host,
  length, encoding) cannot be overridden;
- ``channel`` carries exactly one extension ``urn:medledger:subscription-secret`` whose
  ``valueString`` (at least 32 characters) is the key deliveries are signed with
  (``interop.delivery.signing``). The secret is stored in the Subscription, so anyone of the
  owning institution who may read it may read the secret; errors never echo it.

A resource matches a Subscription when a search of the criteria, restricted to the resource's
id, finds it **as the Subscription's owner institution sees it** (:func:`owner_guard`): a
system caller of that institution with the ``integration`` role, under the group sharing
policy and the Consents in force. So a Subscription never notifies about a resource its owner
may not read. As in R4, the criteria apply to the resource's current version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from medledger.access.caller import Caller
from medledger.access.consent import ConsentIndex
from medledger.access.decide import CallerGuard
from medledger.access.model import PrincipalKind, Role
from medledger.access.permissions import resolve
from medledger.access.scopes import parse_scopes
from medledger.access.sharing import SharingPolicy
from medledger.errors import InputError, PermissionDenied, ResourceInvalid
from medledger.records.fhir_model import SUPPORTED_TYPES
from medledger.records.fhir_shape import issue
from medledger.records.search_params import parse_search
from medledger.records.service import RecordService

__all__ = [
    "FHIR_JSON",
    "MAX_ENDPOINT",
    "MIN_SECRET",
    "SECRET_EXTENSION",
    "STATUSES",
    "SubscriptionRule",
    "check_subscription",
    "matches",
    "notification_key",
    "owner_guard",
    "parse_criteria",
    "parse_subscription",
]

SECRET_EXTENSION = "urn:medledger:subscription-secret"  # noqa: S105 - a URL, not a secret
MIN_SECRET = 32
FHIR_JSON = "application/fhir+json"
STATUSES = ("requested", "active", "off", "error")
MAX_ENDPOINT = 255
_RESULT_PARAMS = frozenset({"_count", "_sort", "_total", "_page_token"})
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection",
     "idempotency-key", "x-medledger-signature", "x-medledger-delivery"}
)  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_MAX_CRITERIA = 2048
_SUBSCRIPTION_SCOPES = parse_scopes("system/*.rs")


@dataclass(frozen=True, slots=True)
class SubscriptionRule:
    """One stored Subscription, checked and read: what matching and delivery need."""

    id: str
    owner: str  # the institution that owns the Subscription and receives its notifications
    version: int
    status: str
    rtype: str
    params: tuple[tuple[str, str], ...]
    endpoint: str
    payload: bool  # True: the resource version is the body; False: an empty body
    headers: tuple[tuple[str, str], ...]
    secret: bytes = field(repr=False)
    end: float | None = None  # Unix seconds after which it is off (R4 ``end``)
    updated: float = 0.0  # Unix seconds of this version (``meta.lastUpdated``)

    @property
    def ref(self) -> str:
        """``Subscription/<id>``, the delivery queue's target."""
        return f"Subscription/{self.id}"

    def active_at(self, now: float) -> bool:
        """Whether it notifies at ``now``: status active and ``end`` not passed."""
        return self.status == "active" and (self.end is None or now < self.end)


def notification_key(subscription_id: str, ref: str) -> str:
    """The idempotency key of one notification: SHA-256 of ``Subscription/<id>|<version ref>``.

    The same version matched twice (a rescan after a restart) queues once.
    """
    return hashlib.sha256(f"Subscription/{subscription_id}|{ref}".encode()).hexdigest()


def parse_criteria(criteria: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``<Type>?<search>`` into the type and its parameters, checked by the search parser.

    Raise ``ResourceInvalid`` naming ``Subscription.criteria``.
    """
    where = "Subscription.criteria"
    if not isinstance(criteria, str) or not criteria or len(criteria) > _MAX_CRITERIA:
        raise _invalid("value", where, "a criteria is <Type> or <Type>?<search>", criteria)
    rtype, _, query = criteria.partition("?")
    served = [t for t in SUPPORTED_TYPES if t != "Subscription"]
    if not _TYPE.fullmatch(rtype) or rtype not in served:
        text = f"criteria type {rtype[:64]!r} is not one this server notifies about; one of "
        raise _invalid("not-supported", where, text + ", ".join(served), rtype)
    try:
        params = parse_qsl(query, keep_blank_values=True, max_num_fields=50)
    except ValueError as exc:  # too many fields
        raise _invalid("value", where, f"criteria search cannot be read: {exc}", query) from None
    for name, value in params:
        if name in _RESULT_PARAMS:
            text = f"criteria parameter {name!r} shapes a page of results; a criteria filters"
            raise _invalid("value", where, text, f"{name}={value}")
    try:
        parse_search(rtype, params)
    except InputError as exc:
        text = f"criteria search parameter {exc.field or ''}: {exc.message}"
        raise _invalid("value", where, text, exc.value) from None
    return rtype, tuple(params)


def check_subscription(resource: Any) -> None:
    """Accept a Subscription this node can serve, or raise ``ResourceInvalid`` naming each
    element that is wrong (FHIRPath, e.g. ``Subscription.channel.type``), 422.

    Run it after the records layer's R4 validation (``validate_resource``); see the module
    docstring for the rules.
    """
    _read(resource)


def parse_subscription(resource: Any, *, owner: str) -> SubscriptionRule:
    """Check a stored ``resource`` (as :func:`check_subscription`) and return its rule."""
    return _build(_read(resource), owner)


def owner_guard(owner: str, policy: SharingPolicy, consents: ConsentIndex) -> CallerGuard:
    """A fresh guard of a system caller of ``owner`` with the ``integration`` role: what a
    Subscription of ``owner`` may see (own records, shared ones, consented ones)."""
    caller = Caller(
        kind=PrincipalKind.CLIENT,
        principal="subscriptions",
        institution=owner,
        roles=(Role.INTEGRATION.value,),
        permissions=resolve(Role.INTEGRATION, owner),
        scopes=_SUBSCRIPTION_SCOPES,
    )
    return CallerGuard(caller, policy, consents)


def matches(service: RecordService, rule: SubscriptionRule, rid: str, guard: CallerGuard) -> bool:
    """Whether the current ``rule.rtype/rid`` matches ``rule``'s criteria as ``guard`` sees it.

    A search the owner may not run at all (``PermissionDenied``) matches nothing; a storage
    failure propagates (the caller retries later).
    """
    try:
        page = service.search(rule.rtype, [*rule.params, ("_id", rid)], guard=guard)
    except PermissionDenied:
        return False
    return any(r.get("id") == rid for r in page.resources)


# -- reading a Subscription ------------------------------------------------------------------


def _read(resource: Any) -> dict[str, Any]:
    """Check ``resource``; return its parsed parts or raise listing every issue."""
    issues: list[dict[str, Any]] = []
    values: list[Any] = []
    out: dict[str, Any] = {}

    def bad(code: str, where: str, text: str, value: Any) -> None:
        issues.append(issue(code, [where], f"{where}: {text}"))
        values.append(value)

    if not isinstance(resource, dict) or resource.get("resourceType") != "Subscription":
        raise _invalid("structure", "Subscription", "a Subscription resource is wanted", None)
    status = resource.get("status")
    if status not in STATUSES:
        bad("value", "Subscription.status", "wanted one of " + ", ".join(STATUSES), status)
    out["status"] = status
    try:
        out["rtype"], out["params"] = parse_criteria(resource.get("criteria"))
    except ResourceInvalid as exc:
        issues.extend(exc.issues)
        values.append(exc.value)
    channel = resource.get("channel")
    if not isinstance(channel, dict):
        bad("required", "Subscription.channel", "a rest-hook channel is required", None)
        channel = {}
    _channel(channel, out, bad)
    end = resource.get("end")
    out["end"] = _instant(end) if end is not None else None
    if end is not None and out["end"] is None:
        bad("value", "Subscription.end", "wanted an instant with a time zone", end)
    if issues:
        first = issues[0]["diagnostics"]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise ResourceInvalid(
            f"invalid Subscription: {first}{more}", issues=issues, value=values[0]
        )
    meta: dict[str, Any] = resource["meta"] if isinstance(resource.get("meta"), dict) else {}
    out["id"], out["version"] = resource.get("id"), meta.get("versionId")
    out["updated"] = _instant(meta.get("lastUpdated")) or 0.0
    return out


def _channel(channel: dict[str, Any], out: dict[str, Any], bad: Any) -> None:
    at = "Subscription.channel"
    kind = channel.get("type")
    if kind != "rest-hook":
        bad("not-supported", f"{at}.type", "only rest-hook channels are sent here", kind)
    endpoint = channel.get("endpoint")
    out["endpoint"] = endpoint
    if not _http_url(endpoint):
        text = f"wanted an absolute http(s) URL with a host, no credentials, ≤ {MAX_ENDPOINT} chars"
        bad("value", f"{at}.endpoint", text, endpoint)
    payload = channel.get("payload")
    out["payload"] = payload is not None
    if payload is not None and payload != FHIR_JSON:
        bad("not-supported", f"{at}.payload", f"wanted {FHIR_JSON} or no payload", payload)
    headers = []
    raw = channel.get("header")
    for i, line in enumerate(raw if isinstance(raw, list) else []):
        name, sep, value = line.partition(":") if isinstance(line, str) else ("", "", "")
        name, value = name.strip(), value.strip()
        where = f"{at}.header[{i}]"
        if not sep or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            # A header line may hold a credential: name its size, never its text.
            size = f"{len(line)} characters" if isinstance(line, str) else type(line).__name__
            bad("value", where, "wanted 'Name: value' without control characters", size)
        elif name.lower() in _RESERVED_HEADERS:
            bad("value", where, f"header {name} is set by the delivery itself", name)
        else:
            headers.append((name, value))
    out["headers"] = tuple(headers)
    secrets = [
        (i, e)
        for i, e in enumerate(channel.get("extension") or [])
        if isinstance(e, dict) and e.get("url") == SECRET_EXTENSION
    ]
    where = f"{at}.extension"
    if len(secrets) != 1:
        text = f"wanted exactly one extension {SECRET_EXTENSION} holding the signing secret"
        bad("required", where, text, f"{len(secrets)} such extensions")
        return
    i, ext = secrets[0]
    secret = ext.get("valueString")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        size = f"{len(secret)} characters" if isinstance(secret, str) else type(secret).__name__
        text = f"the signing secret must be a valueString of at least {MIN_SECRET} characters"
        bad("value", f"{where}[{i}].valueString", text, size)  # never echo the secret
        return
    out["secret"] = secret.encode("utf-8")


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ENDPOINT:
        return False
    if _CONTROL.search(value) or " " in value or "\t" in value:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and parts.password is None
    )


def _instant(value: Any) -> float | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _build(parts: dict[str, Any], owner: str) -> SubscriptionRule:
    version = parts.get("version")
    return SubscriptionRule(
        id=str(parts.get("id") or ""),
        owner=owner,
        version=int(version) if isinstance(version, str) and version.isdigit() else 0,
        status=parts["status"],
        rtype=parts["rtype"],
        params=parts["params"],
        endpoint=parts["endpoint"],
        payload=parts["payload"],
        headers=parts["headers"],
        secret=parts["secret"],
        end=parts["end"],
        updated=parts["updated"],
    )


def _invalid(code: str, where: str, text: str, value: Any) -> ResourceInvalid:
    message = f"{where}: {text}"
    return ResourceInvalid(message, issues=[issue(code, [where], message)], value=value)
