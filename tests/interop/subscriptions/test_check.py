"""check_subscription: what a Subscription must hold to be served, each refusal naming the
element (FHIRPath), the value and what was wanted; and the Subscription search parameters."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import ResourceInvalid
from medledger.interop.subscription_match import (
    MIN_SECRET,
    SECRET_EXTENSION,
    check_subscription,
    notification_key,
    parse_criteria,
    parse_subscription,
)
from medledger.ledger.node import LedgerNode
from medledger.records.fhir_model import validate_resource
from medledger.records.guard import SystemGuard
from medledger.records.search_index import extract_index
from medledger.records.service import RecordService
from tests.interop.subscriptions.conftest import CRITERIA, MEMBER, SECRET, subscription

URL = "https://his.member-east.example/fhir-hook"


def _refused(resource: Any) -> ResourceInvalid:
    with pytest.raises(ResourceInvalid) as caught:
        check_subscription(resource)
    assert caught.value.http_status == 422
    return caught.value


def _with(change: dict[str, Any], channel: dict[str, Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(subscription(URL))
    body.update(change)
    if channel is not None:
        body["channel"].update(channel)
    return body


def test_the_member_hospitals_subscription_is_accepted_and_read() -> None:
    """The documented example passes R4 validation and the check; its rule reads it back."""
    body = subscription(URL)
    validate_resource(body, expected_type="Subscription")
    check_subscription(body)
    rule = parse_subscription({**body, "id": "s1"}, owner=MEMBER)
    assert (rule.rtype, rule.endpoint, rule.owner, rule.status) == (
        "DiagnosticReport", URL, MEMBER, "active"
    )  # fmt: skip
    assert rule.params == (("status", "final,corrected,amended,entered-in-error"),)
    assert rule.headers == (("X-Hospital", "hosp-member-east"),)
    assert rule.secret == SECRET.encode()
    assert rule.payload
    assert SECRET not in repr(rule)  # the secret never shows in a repr or a log line


@pytest.mark.parametrize("status", ["requested", "active", "off", "error"])
def test_every_r4_status_is_accepted(status: str) -> None:
    """requested, active, off and error are the four R4 statuses, all accepted."""
    check_subscription(_with({"status": status}))


@pytest.mark.parametrize(
    ("criteria", "needle"),
    [
        ("Spaceship?status=final", "'Spaceship' is not one this server notifies about"),
        ("AuditEvent", "not one this server notifies about"),
        ("Subscription?status=active", "not one this server notifies about"),
        ("diagnosticreport", "not one this server notifies about"),
        ("DiagnosticReport?colour=red", "unknown search parameter 'colour'"),
        ("DiagnosticReport?_count=5", "shapes a page of results"),
        ("DiagnosticReport?_include=DiagnosticReport:subject", "'_include' is not supported"),
        ("", "a criteria is <Type> or <Type>?<search>"),
    ],
)
def test_a_criteria_the_records_layer_cannot_serve_is_refused(criteria: str, needle: str) -> None:
    """An unknown type, Subscription itself, an unknown parameter or a paging parameter → 422
    naming Subscription.criteria."""
    exc = _refused(_with({"criteria": criteria}))
    assert exc.field == "Subscription.criteria"
    assert needle in exc.issues[0]["diagnostics"]


def test_criteria_without_a_search_is_the_whole_type() -> None:
    """``Observation`` alone is a criteria with no parameters."""
    assert parse_criteria("Observation") == ("Observation", ())
    assert parse_criteria(CRITERIA)[0] == "DiagnosticReport"


@pytest.mark.parametrize("kind", ["websocket", "email", "sms", "message", "carrier-pigeon"])
def test_a_channel_other_than_rest_hook_is_refused(kind: str) -> None:
    """Other R4 channel types (and made-up ones) → 422 naming Subscription.channel.type."""
    exc = _refused(_with({}, {"type": kind}))
    assert exc.field == "Subscription.channel.type"
    assert exc.value == kind
    assert exc.issues[0]["code"] == "not-supported"


@pytest.mark.parametrize("secret", ["", "short", "x" * (MIN_SECRET - 1)])
def test_a_short_secret_is_refused_without_echoing_it(secret: str) -> None:
    """A secret under 32 characters → 422 naming the extension's valueString; the error says
    how long it was, never what it was."""
    exc = _refused(subscription(URL, secret=secret))
    assert exc.field == "Subscription.channel.extension[0].valueString"
    assert exc.value == f"{len(secret)} characters"
    assert secret == "" or secret not in str(exc.to_dict())


def test_a_missing_or_doubled_secret_is_refused() -> None:
    """No secret extension, or two of them → 422 naming Subscription.channel.extension."""
    none = _with({}, {"extension": [{"url": "urn:other", "valueString": "x"}]})
    assert _refused(none).field == "Subscription.channel.extension"
    ext = {"url": SECRET_EXTENSION, "valueString": "y" * 40}
    two = _with({}, {"extension": [ext, ext]})
    assert _refused(two).field == "Subscription.channel.extension"


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://his.example/hook",
        "mailto:lis@example.org",
        "/relative/hook",
        "https://",
        "https://user:pw@his.example/hook",
        "https://his.example:99999/hook",
        "https://his.example/a b",
        "https://his.example/" + "x" * 250,
    ],
)
def test_an_endpoint_that_is_not_a_plain_http_url_is_refused(endpoint: str) -> None:
    """Not http(s), no host, credentials, a bad port, a space, over 255 characters → 422."""
    exc = _refused(_with({}, {"endpoint": endpoint}))
    assert exc.field == "Subscription.channel.endpoint"
    assert exc.value == endpoint


def test_a_payload_other_than_fhir_json_is_refused() -> None:
    """application/fhir+xml (or anything but application/fhir+json) → 422 naming payload."""
    exc = _refused(_with({}, {"payload": "application/fhir+xml"}))
    assert exc.field == "Subscription.channel.payload"


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("no colon here", "Subscription.channel.header[0]"),
        ("X-Bad\r\nInjected: 1", "Subscription.channel.header[0]"),
        ("X-Ok: line\nbreak", "Subscription.channel.header[0]"),
        ("Content-Type: text/xml", "Subscription.channel.header[0]"),
        ("Idempotency-Key: mine", "Subscription.channel.header[0]"),
        ("X-MedLedger-Signature: forged", "Subscription.channel.header[0]"),
    ],
)
def test_a_bad_or_reserved_header_is_refused(line: str, where: str) -> None:
    """A header line without a name, with a line break, or one the delivery sets → 422."""
    exc = _refused(_with({}, {"header": [line]}))
    assert exc.field == where


def test_every_problem_is_listed_at_once() -> None:
    """Wrong type, endpoint and secret together → one error listing three issues."""
    body = _with({}, {"type": "websocket", "endpoint": "ftp://x", "extension": []})
    exc = _refused(body)
    assert [i["expression"][0] for i in exc.issues] == [
        "Subscription.channel.type",
        "Subscription.channel.endpoint",
        "Subscription.channel.extension",
    ]


def test_notification_keys_differ_per_subscription_and_version() -> None:
    """One key per (Subscription, version): stable, and distinct for any other pair."""
    ref = "DiagnosticReport/r1/_history/1"
    assert notification_key("s1", ref) == notification_key("s1", ref)
    assert len({notification_key(s, r) for s in ("s1", "s2") for r in (ref, ref[:-1] + "2")}) == 4


@settings(max_examples=200)
@given(
    criteria=st.text(max_size=80),
    endpoint=st.text(max_size=40),
    header=st.text(max_size=40),
    kind=st.text(max_size=12),
)
def test_anything_is_either_accepted_or_refused_as_resource_invalid(
    criteria: str, endpoint: str, header: str, kind: str
) -> None:
    """Arbitrary criteria, endpoint, header and channel type never raise anything but
    ResourceInvalid (no bare ValueError or KeyError escapes)."""
    body = _with({"criteria": criteria}, {"endpoint": endpoint, "header": [header], "type": kind})
    issues: list[dict[str, Any]] | None = None
    try:
        check_subscription(body)
    except ResourceInvalid as exc:
        issues = exc.issues
    if issues is not None:
        assert issues
        assert all(i["expression"][0].startswith("Subscription.") for i in issues)


@settings(max_examples=100)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                        max_size=3),
                    max_leaves=12))  # fmt: skip
def test_any_json_as_a_channel_is_refused_cleanly(channel: Any) -> None:
    """Whatever JSON the channel holds, the check answers with ResourceInvalid only."""
    with pytest.raises(ResourceInvalid):
        check_subscription({**subscription(URL), "channel": channel})


def test_subscription_search_parameters_status_url_type(tmp_path: Path) -> None:
    """status, url (channel.endpoint) and type (channel.type) index and search as R4 names them."""
    body = subscription(URL, status="requested")
    assert {(v.param, v.value) for v in extract_index(body)} == {
        ("status", "requested"),
        ("url", URL),
        ("type", "rest-hook"),
    }
    node = LedgerNode.init(tmp_path / "d", node="central", block_max_wait_ms=1)
    try:
        service = RecordService.open(node, institution="hosp-central")
        rid = service.create("Subscription", body, guard=SystemGuard(MEMBER)).version.rid
        other = {**body, "channel": {**body["channel"], "endpoint": URL + "/other"}}
        service.create("Subscription", {**other, "status": "off"}, guard=SystemGuard(MEMBER))
        for params in ([("url", URL)], [("status", "requested")], [("type", "rest-hook"),
                                                                    ("url", URL)]):  # fmt: skip
            found = service.search("Subscription", params).resources
            assert [r["id"] for r in found] == [rid], params
        assert len(service.search("Subscription", [("type", "rest-hook")]).resources) == 2
        assert service.search("Subscription", [("status", "active")]).resources == []
    finally:
        node.close()
