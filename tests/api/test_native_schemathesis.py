"""Schemathesis against the OpenAPI of the native endpoints, over real HTTP.

The live server's own /openapi.json drives schemathesis at ``POST /api/v1/verify``,
``GET /healthz`` and ``GET /readyz`` (the FHIR routes have their own fuzzer in
test_fhir_fuzz.py): for data that fits the schema and data that does not, every response must be
a non-5xx with a documented status code, content type and body, and no request may write to the
ledger. A second test mutates a real certificate: every mutant is refused (400) or found
invalid, never a 5xx, and the original verifies.

Schemathesis is driven through its documented Python API (``APIOperation.as_strategy`` under
Hypothesis, ``Case.call_and_validate``): its pytest fixture loader
(``schemathesis.pytest.from_fixture``) needs ``Node._nodeid``, which pytest 9 no longer has.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi import unregister_string_format

from medledger.crypto.canonical import canonical_bytes
from medledger.errors import MedLedgerError
from tests.api.conftest import Live

NATIVE = r"^/(api/v1/|healthz$|readyz$)"
FHIR = {"Content-Type": "application/fhir+json"}
JSON = {"Content-Type": "application/json"}
PATIENT = {"resourceType": "Patient", "gender": "female"}
EXAMPLES = 100  # per operation and generation mode

# The checks (schemathesis.toml keys): no 5xx; status code, content type, headers and body as
# documented; data the schema forbids is refused with a 4xx.
CONFIG: dict[str, Any] = {
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
    },
}

# Hypothesis draws a string for ``^[0-9a-f]{128}$`` one character at a time, which made the
# certificate's hashes and signatures ~85% of the run time. A custom format next to each such
# pattern draws the bytes whole; the pattern stays, so what may be generated does not change.
_HEX_PATTERN = re.compile(r"\^\[0-9a-f\]\{(\d+)\}\$")


def _hex_format(chars: int) -> str:
    return f"x-test-lowerhex-{chars}"


def _steer_hex(node: Any, found: set[int]) -> Any:
    if isinstance(node, dict):
        out = {k: _steer_hex(v, found) for k, v in node.items()}
        match = _HEX_PATTERN.fullmatch(str(node.get("pattern", "")))
        if match and "format" not in node:
            found.add(int(match[1]))
            out["format"] = _hex_format(int(match[1]))
        return out
    if isinstance(node, list):
        return [_steer_hex(v, found) for v in node]
    return node


def tree_size(client: httpx.Client) -> int:
    """The ledger's size as GET /readyz reports it."""
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    size = r.json()["tree_size"]
    assert isinstance(size, int)
    return size


@pytest.fixture
def native_schema(live: Live) -> Iterator[BaseSchema]:
    """The native operations of the live server's OpenAPI document, sent to the live server."""
    found: set[int] = set()
    document = _steer_hex(live.client.get("/openapi.json").json(), found)
    assert found, "no hex patterns: the verify request schema is missing"
    for chars in found:
        strategy = st.binary(min_size=chars // 2, max_size=chars // 2).map(bytes.hex)
        schemathesis.openapi.format(_hex_format(chars), strategy)
    config = schemathesis.Config.from_dict({**CONFIG, "base-url": live.url})
    try:
        schema = schemathesis.openapi.from_dict(document, config=config)
        # The admin API changes the directory and anchors it (tests/api/test_admin_api.py).
        yield schema.include(path_regex=NATIVE).exclude(path_regex="^/api/v1/(admin|interop)")
    finally:
        for chars in found:
            unregister_string_format(_hex_format(chars))


def test_native_openapi(live: Live, native_schema: BaseSchema) -> None:
    """Positive and negative data: no 5xx, only documented responses, no ledger writes."""
    before = tree_size(live.client)
    entries = _entries(live)
    calls: Counter[str] = Counter()
    operations = [result.ok() for result in native_schema.get_all_operations()]
    assert sorted(op.label for op in operations) == [
        "GET /healthz",
        "GET /readyz",
        "POST /api/v1/verify",
    ]
    with requests.Session() as session:
        for operation in operations:
            modes = [GenerationMode.POSITIVE]
            if operation.method.upper() == "POST":  # the GETs take nothing that could be wrong
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                _fuzz(operation, mode, session, live.client, before, calls)
    print(dict(calls))  # shown with -s: how many requests each operation and mode got
    assert calls["POST /api/v1/verify positive"] >= EXAMPLES // 2
    assert calls["POST /api/v1/verify negative"] >= EXAMPLES // 2
    assert calls["GET /healthz positive"] >= 1
    assert calls["GET /readyz positive"] >= 1
    assert tree_size(live.client) == before
    assert _entries(live) == entries, "an entry was appended (not yet in a block)"


def _entries(live: Live) -> int:
    with live.node.reader() as r:
        return r.entry_count()


def _fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    session: requests.Session,
    client: httpx.Client,
    before: int,
    calls: Counter[str],
) -> None:
    """Send ``EXAMPLES`` generated requests to ``operation`` and run the configured checks."""

    @settings(
        max_examples=EXAMPLES,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(session=session)
        calls[f"{operation.label} {mode.value}"] += 1
        assert tree_size(client) == before, f"the ledger grew after {case.as_curl_command()}"

    run()


def test_documented_refusals(live: Live, native_schema: BaseSchema) -> None:
    """413 and 415 answer as documented; a 405 names the allowed methods (RFC 9110 §15.5.6)."""
    verify = native_schema["/api/v1/verify"]["POST"]
    url = f"{live.url}/api/v1/verify"
    body = b'{"certificate": {}}'
    big = json.dumps({"certificate": {}, "payload": "x" * 70_000}).encode()  # limit: 64 KiB

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    def post(content: bytes, ctype: str | None) -> httpx.Response:
        return httpx.post(url, content=content, headers={"Content-Type": ctype} if ctype else {})

    cases: list[tuple[int, httpx.Response | requests.Response]] = [
        (413, post(big, "application/json")),
        (413, requests.post(url, data=chunks(), headers=JSON, timeout=30)),
        (415, post(body, "text/plain")),
        (415, post(body, "application/fhir+json")),
        (415, post(body, None)),
        (400, post(b"{}", "application/json; charset=utf-8")),
    ]
    for status, response in cases:
        assert response.status_code == status, (status, response.text)
        verify.validate_response(response)
    assert httpx.get(url).status_code == 401  # only POST /api/v1/verify is public
    r = httpx.get(url, headers=live.ids.headers())
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "input.invalid"


def test_deeply_nested_values_are_refused_not_5xx(live: Live) -> None:
    """Regression: a bad value nested just below the parser's limit used to be echoed in the
    error details, and encoding it exhausted the recursion limit: 503, or a reset connection."""
    for depth in range(900, 1000):
        nested = "[" * depth + "]" * depth
        for body in (
            f'{{"certificate": {{"format": "medledger-cert/1", "entry": {nested}}}}}',
            f'{{"certificate": {nested}}}',
            f'{{"certificate": {{"format": {nested}}}}}',
        ):
            r = live.client.post("/api/v1/verify", content=body, headers=JSON)
            assert r.status_code == 400, (depth, body[:60], r.text[:200])
            assert len(r.content) < 2000, r.text[:200]


# --- a real certificate and its mutants ------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
Path = tuple[str | int, ...]


def _paths(doc: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield prefix, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


def _parent(doc: Any, path: Path) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutants(draw: st.DrawFn, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One mutation of ``body``: flip a character, drop a member, change a type or a number."""
    doc = copy.deepcopy(body)
    # Leaving the payload out (or null) asks for the certificate alone, which is still valid.
    paths = [(p, v) for p, v in _paths(doc) if p and p != ("payload",)]
    kind = draw(st.sampled_from(["flip", "drop", "retype", "renumber", "add"]))
    if kind == "flip":
        path, value = draw(st.sampled_from([(p, v) for p, v in paths if isinstance(v, str) and v]))
        i = draw(st.integers(0, len(value) - 1))
        char = draw(st.sampled_from("0123456789abcdefABCDEF-xZ é").filter(lambda c: c != value[i]))
        _parent(doc, path)[path[-1]] = value[:i] + char + value[i + 1 :]
    elif kind == "drop":
        path, _ = draw(st.sampled_from(paths))
        del _parent(doc, path)[path[-1]]
    elif kind == "retype":
        path, value = draw(st.sampled_from(paths))
        _parent(doc, path)[path[-1]] = draw(
            json_values.filter(lambda v: type(v) is not type(value))
        )
    elif kind == "renumber":
        numbers = [(p, v) for p, v in paths if type(v) is int]
        path, value = draw(st.sampled_from(numbers))
        delta = draw(st.sampled_from([1, -1, 2**53, -(2**53), 10**30]))
        _parent(doc, path)[path[-1]] = value + delta
    else:
        objects = [(p, v) for p, v in _paths(doc) if isinstance(v, dict)]
        path, value = draw(st.sampled_from(objects))
        key = draw(st.text(min_size=1).filter(lambda k: k not in value))
        value[key] = draw(json_values)
    return kind, doc


def _same_to_a_verifier(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` have one RFC 8785 form (then e.g. 1 and 1.0 in the entry agree)."""
    try:
        return canonical_bytes(a) == canonical_bytes(b)
    except MedLedgerError:
        return False


def test_certificate_mutants(live: Live) -> None:
    """The real certificate verifies; every mutant is a 400 or valid=false, never a 5xx."""
    c = live.client
    created = c.post("/fhir/R4/Patient", content=json.dumps(PATIENT), headers=FHIR)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    resource = c.get(f"/fhir/R4/Patient/{pid}").json()
    cert = c.get(f"/fhir/R4/Patient/{pid}/_history/1/$certificate").json()
    body = {"certificate": cert, "payload": resource}
    for original in (body, {"certificate": cert}):
        ok = c.post("/api/v1/verify", json=original)
        assert ok.status_code == 200, ok.text
        assert ok.json()["valid"] is True, ok.json()
    before, entries = tree_size(c), _entries(live)
    outcomes: Counter[str] = Counter()

    @settings(max_examples=150, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutant=mutants(body))
    def run(mutant: tuple[str, dict[str, Any]]) -> None:
        kind, doc = mutant
        r = c.post("/api/v1/verify", content=json.dumps(doc, ensure_ascii=False), headers=JSON)
        assert r.status_code in (200, 400), (kind, doc, r.status_code, r.text)
        answer = r.json()
        if r.status_code == 400:
            assert set(answer) == {"error"}, answer
        elif _same_to_a_verifier(doc, body):
            assert answer["valid"] is True, (kind, doc, answer)
        else:
            assert answer["valid"] is False, (kind, doc, answer)
        outcomes[f"{kind} {r.status_code}"] += 1

    run()
    print(dict(outcomes))
    assert tree_size(c) == before, "verifying wrote to the ledger"
    assert _entries(live) == entries
    assert any(k.endswith(" 200") for k in outcomes)
    assert any(k.endswith(" 400") for k in outcomes)
