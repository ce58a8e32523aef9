"""Dictionaries, mappings and $translate over a real HTTP server, as the hospitals use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.api.terminology import XLSX
from medledger.interop.dictionaries import DictionaryService
from medledger.interop.terminology import read_dictionary, read_mappings
from tests.identity import CENTRAL, MEMBER, OTHER

from .conftest import (
    CENTRAL_CSV,
    CENTRAL_SYSTEM,
    DATA,
    MAPPING_CSV,
    MEMBER_CSV,
    MEMBER_SYSTEM,
    Server,
    load_samples,
    put_table,
    serving,
    validate_parameters,
)

TRANSLATE = "/fhir/R4/ConceptMap/$translate"
_BROKEN_MAP = {
    "resourceType": "ConceptMap",
    "group": [{"source": "urn:a", "target": "urn:b", "element": [{"code": "x", "target": [{}]}]}],
}
FHIR_101 = json.loads((DATA / "fhir_r4_conceptmap_101.json").read_text(encoding="utf-8"))


def _param(params: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The parameters of a Parameters resource with this name."""
    return [p for p in params["parameter"] if p["name"] == name]


def _concepts(params: dict[str, Any]) -> list[str]:
    """The codes of the match concepts of a $translate answer."""
    return [
        part["valueCoding"]["code"]
        for m in _param(params, "match")
        for part in m["part"]
        if part["name"] == "concept"
    ]


def _translate_get(client: httpx.Client, code: str, **extra: str) -> httpx.Response:
    """GET $translate of a member code towards the central dictionary."""
    query = {"system": MEMBER_SYSTEM, "code": code, "targetsystem": CENTRAL_SYSTEM, **extra}
    return client.get(TRANSLATE, params=query)


def _post(client: httpx.Client, *parameters: dict[str, Any]) -> httpx.Response:
    """POST $translate with a Parameters resource."""
    body = {"resourceType": "Parameters", "parameter": list(parameters)}
    return client.post(TRANSLATE, json=body, headers={"Content-Type": "application/fhir+json"})


def test_translate_get_maps_member_code_to_central_code(live: Server) -> None:
    """GET $translate turns the member's 胸部CT平扫 JC0101 into the central 300101."""
    load_samples(live)
    with live.client("dr-member") as client:
        response = _translate_get(client, "JC0101")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    params = response.json()
    validate_parameters(params)
    assert params["parameter"][0] == {"name": "result", "valueBoolean": True}
    (match,) = _param(params, "match")
    parts = {p["name"]: p for p in match["part"]}
    assert parts["equivalence"]["valueCode"] == "equivalent"
    assert parts["concept"]["valueCoding"] == {
        "system": CENTRAL_SYSTEM,
        "code": "300101",
        "display": "胸部CT平扫",
    }
    assert parts["source"]["valueUri"] == f"urn:medledger:map:{MEMBER}:{CENTRAL}"


def test_translate_post_coding_and_codeable_concept(live: Server) -> None:
    """POST $translate with a coding or a codeableConcept answers like GET does."""
    load_samples(live)
    with live.client("dr-central") as client:
        coding = {"name": "coding", "valueCoding": {"system": MEMBER_SYSTEM, "code": "CS0101"}}
        by_coding = _post(client, coding, {"name": "targetsystem", "valueUri": CENTRAL_SYSTEM})
        concept = {
            "coding": [
                {"system": "urn:his:local", "code": "X1"},
                {"system": MEMBER_SYSTEM, "code": "JY0001", "display": "血常规"},
            ],
            "text": "血常规",
        }
        by_concept = _post(client, {"name": "codeableConcept", "valueCodeableConcept": concept})
    assert by_coding.status_code == 200, by_coding.text
    validate_parameters(by_coding.json())
    assert by_coding.json()["parameter"][0]["valueBoolean"] is True
    assert _concepts(by_coding.json()) == ["310101"]
    assert by_concept.status_code == 200, by_concept.text
    validate_parameters(by_concept.json())
    assert by_concept.json()["parameter"][0]["valueBoolean"] is True
    assert _concepts(by_concept.json()) == ["400101"]


def test_translate_reverse_finds_the_member_code(live: Server) -> None:
    """reverse looks the central code up among targets and answers the member code."""
    load_samples(live)
    with live.client("dr-central") as client:
        response = client.get(
            TRANSLATE, params={"system": CENTRAL_SYSTEM, "code": "300101", "reverse": "true"}
        )
        posted = _post(
            client,
            {"name": "coding", "valueCoding": {"system": CENTRAL_SYSTEM, "code": "300102"}},
            {"name": "reverse", "valueBoolean": True},
        )
    assert response.status_code == 200, response.text
    assert _concepts(response.json()) == ["JC0101"]
    assert _concepts(posted.json()) == ["JC0102"]


def test_translate_inline_conceptmap_golden_example(live: Server) -> None:
    """The FHIR R4 ConceptMap example 101 sent inline: address-use home → v3 H."""
    with live.client("dr-other") as client:
        response = _post(
            client,
            {"name": "conceptMap", "resource": FHIR_101},
            {"name": "system", "valueUri": "http://hl7.org/fhir/address-use"},
            {"name": "code", "valueCode": "home"},
        )
    assert response.status_code == 200, response.text
    validate_parameters(response.json())
    assert response.json()["parameter"][0]["valueBoolean"] is True
    assert _concepts(response.json()) == ["H"]


def test_unmapped_codes_answer_false_with_a_message(live: Server) -> None:
    """A code marked 无对照 and an unknown code both answer result false with a message."""
    load_samples(live)
    with live.client("dr-member") as client:
        marked = _translate_get(client, "JC0999").json()
        unknown = _translate_get(client, "JC9999").json()
    validate_parameters(marked)
    assert marked["parameter"][0] == {"name": "result", "valueBoolean": False}
    (message,) = _param(marked, "message")
    assert "JC0999" in message["valueString"]
    assert "unmatched" in message["valueString"]
    assert unknown["parameter"][0]["valueBoolean"] is False
    assert "has no mapping" in _param(unknown, "message")[0]["valueString"]


def test_translate_url_selects_one_map_and_unknown_url_is_404(live: Server) -> None:
    """url narrows to that ConceptMap; a url nobody stored answers an OperationOutcome 404."""
    load_samples(live)
    url = f"urn:medledger:map:{MEMBER}:{CENTRAL}"
    with live.client("dr-member") as client:
        found = _translate_get(client, "JC0102", url=url)
        missing = _translate_get(client, "JC0102", url="urn:medledger:map:x:y")
    assert _concepts(found.json()) == ["300102"]
    assert missing.status_code == 404
    outcome = missing.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "urn:medledger:map:x:y" in outcome["issue"][0]["diagnostics"]


def test_translate_bad_requests_name_the_parameter(live: Server) -> None:
    """Missing system, a repeated or unsupported parameter, a coding in GET: 400 naming it."""
    with live.client("dr-member") as client:
        cases = {
            "system": client.get(TRANSLATE, params={"code": "JC0101"}),
            "code": client.get(TRANSLATE, params=[("system", "a"), ("code", "1"), ("code", "2")]),
            "dependency": client.get(TRANSLATE, params={"dependency": "x", "code": "1"}),
            "coding": client.get(TRANSLATE, params={"coding": "a|b"}),
            "Parameters.parameter[0]": _post(client, {"name": "code", "valueInteger": 3}),
            "Parameters.parameter[1].valueBoolean": _post(
                client,
                {"name": "coding", "valueCoding": {"system": "urn:a", "code": "x"}},
                {"name": "reverse", "valueBoolean": "yes"},
            ),
            "conceptMap.ConceptMap.group[0].element[0].target[0].code": _post(
                client,
                {"name": "conceptMap", "resource": _BROKEN_MAP},
                {"name": "coding", "valueCoding": {"system": "urn:a", "code": "x"}},
            ),
        }
    for name, response in cases.items():
        assert response.status_code == 400, (name, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert name in json.dumps(outcome, ensure_ascii=False), name


def test_translate_sees_only_conceptmaps_the_caller_may_read(tmp_path: Path) -> None:
    """Without a sharing rule for dictionaries another institution's map is invisible."""
    with serving(tmp_path, policy="version: 1\nrules: []\n") as server:
        load_samples(server, by="hub")  # each record still belongs to its institution
        with server.client("dr-member") as own, server.client("dr-other") as other:
            assert _translate_get(own, "JC0101").json()["parameter"][0]["valueBoolean"] is True
            hidden = _translate_get(other, "JC0101").json()
            refused = other.get(f"/api/v1/interop/mappings/{MEMBER}/{CENTRAL}")
        with server.client("auditor") as auditor:
            no_role = _translate_get(auditor, "JC0101")
    assert hidden["parameter"][0]["valueBoolean"] is False
    assert refused.status_code == 403
    assert no_role.status_code == 403


def test_import_answers_summary_and_reimport_is_idempotent(live: Server) -> None:
    """PUT answers items, version and ledger index; the same table again writes nothing."""
    with live.client("dr-member") as client:
        first = put_table(client, f"dictionaries/{MEMBER}", MEMBER_CSV)
        again = put_table(client, f"dictionaries/{MEMBER}", MEMBER_CSV)
    assert first.status_code == 201, first.text
    summary = first.json()
    assert summary["items"] == 49
    assert summary["version"] == 1
    assert summary["created"] is True
    assert isinstance(summary["ledger_index"], int)
    assert summary["url"] == MEMBER_SYSTEM
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["version"] == 1


def test_export_round_trips_csv_and_xlsx_in_both_languages(live: Server) -> None:
    """Exported dictionaries and mappings read back to exactly what was imported."""
    load_samples(live)
    with live.client("dr-other") as client:
        for fmt in ("csv", "xlsx"):
            for lang in ("zh", "en"):
                query = {"format": fmt, "lang": lang}
                got = client.get(f"/api/v1/interop/dictionaries/{MEMBER}", params=query)
                assert got.status_code == 200, got.text
                assert read_dictionary(got.content) == read_dictionary(MEMBER_CSV)
                mapped = client.get(f"/api/v1/interop/mappings/{MEMBER}/{CENTRAL}", params=query)
                assert mapped.status_code == 200, mapped.text
                assert read_mappings(mapped.content) == read_mappings(MAPPING_CSV)
        xlsx = client.get(f"/api/v1/interop/dictionaries/{CENTRAL}", params={"format": "xlsx"})
        bad = client.get(f"/api/v1/interop/dictionaries/{CENTRAL}", params={"format": "xls"})
    assert xlsx.headers["content-type"] == XLSX
    assert f'filename="dict-{CENTRAL}.xlsx"' in xlsx.headers["content-disposition"]
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "format"


def test_xlsx_upload_is_stored(live: Server) -> None:
    """An XLSX workbook body is imported like the CSV it was exported from."""
    load_samples(live)
    with live.client("dr-central") as client:
        workbook = client.get(f"/api/v1/interop/dictionaries/{CENTRAL}?format=xlsx").content
        stored = put_table(client, f"dictionaries/{OTHER}", workbook, XLSX)
    assert stored.status_code == 403  # dr-central may not create hosp-other's dictionary
    with live.client("dr-other") as client:
        stored = put_table(client, f"dictionaries/{OTHER}", workbook, XLSX)
        back = client.get(f"/api/v1/interop/dictionaries/{OTHER}")
    assert stored.status_code == 201, stored.text
    assert read_dictionary(back.content) == read_dictionary(CENTRAL_CSV)


def test_bad_row_is_refused_naming_row_and_column_and_nothing_is_stored(live: Server) -> None:
    """A table with a bad 类别 on row 3 is a 400 naming it; no CodeSystem is written."""
    table = "项目代码,项目名称,类别\nJC0101,胸部CT平扫,放射\nJC0102,胸部CT增强,放疗\n".encode()
    with live.client("dr-member") as client:
        size = live.node.head().tree_size
        refused = put_table(client, f"dictionaries/{MEMBER}", table)
        after = client.get(f"/api/v1/interop/dictionaries/{MEMBER}")
    assert refused.status_code == 400
    details = refused.json()["error"]["details"]
    assert details["field"] == "row 3, column 类别"
    assert details["value"] == "放疗"
    assert after.status_code == 404
    assert live.service.store.facts("CodeSystem", f"dict-{MEMBER}") is None
    assert live.node.head().tree_size == size


def test_other_institution_cannot_put_this_dictionary(live: Server) -> None:
    """dr-other gets 403 for hosp-member's dictionary, before and after it exists."""
    with live.client("dr-other") as other, live.client("dr-member") as member:
        before = put_table(other, f"dictionaries/{MEMBER}", MEMBER_CSV)
        assert put_table(member, f"dictionaries/{MEMBER}", MEMBER_CSV).status_code == 201
        after = put_table(other, f"dictionaries/{MEMBER}", CENTRAL_CSV)
        mapping = put_table(other, f"mappings/{MEMBER}/{CENTRAL}", MAPPING_CSV)
        current = member.get(f"/fhir/R4/CodeSystem/dict-{MEMBER}")
    for refused in (before, after, mapping):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "access.denied"
    assert current.json()["meta"]["versionId"] == "1"
    assert current.json()["url"] == MEMBER_SYSTEM


def test_hub_import_belongs_to_the_institution(live: Server) -> None:
    """The group hub imports hosp-member's dictionary; hosp-member's own user may update it."""
    with live.client("hub") as hub, live.client("dr-member") as member:
        assert put_table(hub, f"dictionaries/{MEMBER}", CENTRAL_CSV).status_code == 201
        updated = put_table(member, f"dictionaries/{MEMBER}", MEMBER_CSV)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert live.service.store.facts("CodeSystem", f"dict-{MEMBER}").owner == MEMBER


def test_mapping_with_unknown_target_code_is_refused(live: Server) -> None:
    """A mapping naming a code missing from the central dictionary is a 400 naming it."""
    load_samples(live)
    table = "本院代码,本院名称,对照代码,对照名称,对照关系\nJC0101,胸部CT平扫,399999,?,等同\n"
    with live.client("dr-member") as client:
        refused = put_table(client, f"mappings/{MEMBER}/{CENTRAL}", table.encode())
    assert refused.status_code == 400
    details = refused.json()["error"]["details"]
    assert details["field"] == "target_code"
    assert details["value"] == "399999"
    assert CENTRAL_SYSTEM in details["expected"]


def test_body_limits_and_content_type(live: Server) -> None:
    """A body over max_body is 413 and a JSON body for a table is 415."""
    with live.client("dr-member") as client:
        big = put_table(client, f"dictionaries/{MEMBER}", b"a," * 40_000)
        wrong = put_table(client, f"dictionaries/{MEMBER}", b"{}", "application/json")
    assert big.status_code == 413
    assert wrong.status_code == 415
    assert wrong.json()["error"]["details"]["field"] == "Content-Type"


def test_suggestions_for_unmapped_items(live: Server) -> None:
    """Suggestions list unmapped member items with the right central item first."""
    with live.client("dr-member") as member, live.client("dr-central") as central:
        put_table(member, f"dictionaries/{MEMBER}", MEMBER_CSV)
        put_table(central, f"dictionaries/{CENTRAL}", CENTRAL_CSV)
        first = member.get(f"/api/v1/interop/mappings/{MEMBER}/{CENTRAL}/suggestions")
        head = MAPPING_CSV.decode("utf-8").splitlines()[:3]  # JC0101 and JC0102 mapped
        put_table(member, f"mappings/{MEMBER}/{CENTRAL}", "\n".join(head).encode())
        later = member.get(f"/api/v1/interop/mappings/{MEMBER}/{CENTRAL}/suggestions?limit=1")
        bad = member.get(f"/api/v1/interop/mappings/{MEMBER}/{CENTRAL}/suggestions?limit=0")
    assert first.status_code == 200, first.text
    found = {s["code"]: s for s in first.json()["suggestions"]}
    assert len(found) == 49
    top = found["JC0101"]["candidates"][0]
    assert (top["code"], top["display"]) == ("300101", "胸部CT平扫")
    assert 60 <= top["score"] <= 100
    assert all(len(s["candidates"]) <= 3 for s in found.values())
    remaining = {s["code"]: s for s in later.json()["suggestions"]}
    assert "JC0101" not in remaining
    assert "JC0102" not in remaining
    assert len(remaining) == 47
    assert all(len(s["candidates"]) <= 1 for s in remaining.values())
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "limit"


@settings(max_examples=25)
@given(code=st.text(min_size=1, max_size=20))
def test_translate_never_fails_on_odd_codes(loaded: Server, code: str) -> None:
    """Any code text gets a Parameters answer or a 400 OperationOutcome, never a 500."""
    with loaded.client("dr-member") as client:
        response = client.get(TRANSLATE, params={"system": MEMBER_SYSTEM, "code": code})
    assert response.status_code in (200, 400), response.text
    kind = response.json()["resourceType"]
    assert kind == ("Parameters" if response.status_code == 200 else "OperationOutcome")


def test_gateway_translator_sees_a_mapping_imported_over_http(live: Server) -> None:
    """A listening DictionaryService's translator picks up a mapping PUT over HTTP at once."""
    gateway = DictionaryService(live.service)
    assert gateway.translator().lookup(MEMBER_SYSTEM, "JC0101", CENTRAL_SYSTEM) == ()
    load_samples(live)
    found = gateway.translator().lookup(MEMBER_SYSTEM, "JC0101", CENTRAL_SYSTEM)
    assert [c.code for c in found] == ["300101"]
