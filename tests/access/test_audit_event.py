"""AuditRecord: validation, the PHI guard, and its FHIR R4 AuditEvent form."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from medledger.access.audit_event import (
    BREAK_GLASS_URL,
    AuditRecord,
    access_record,
    from_access_event,
    outcome_code,
)
from medledger.access.audit_guard import looks_like_id_number
from medledger.access.caller import ANONYMOUS, Caller
from medledger.access.lockout import LockoutPolicy, LockState
from medledger.access.model import PrincipalKind
from medledger.errors import InputError
from tests.access._audit_fixtures import DR_LI, LIS, PSEUDONYM, read_record

EVENT_ID = "0b6c1d4e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"
AT = "2026-11-23T08:00:00.123456Z"
ID_CARD = "11010519491231002X"


def _fhir(rec: AuditRecord) -> dict[str, object]:
    return rec.to_fhir(EVENT_ID, AT, "hosp-central")


def test_read_event_is_a_valid_r4_audit_event() -> None:
    """The rendered event passes the FHIR R4(B) model and carries who, what, where, outcome."""
    event = _fhir(read_record(7))
    AuditEvent.model_validate(event)
    assert event["type"]["code"] == "rest"  # type: ignore[index]
    assert event["subtype"] == [  # type: ignore[comparison-overlap]
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}
    ]
    agents = event["agent"]
    assert agents[0]["who"]["identifier"] == {  # type: ignore[index]
        "system": "urn:medledger:user",
        "value": "dr.li",
    }
    assert agents[0]["requestor"] is True  # type: ignore[index]
    assert agents[0]["network"] == {"address": "10.1.2.3", "type": "2"}  # type: ignore[index]
    assert agents[1]["who"]["identifier"]["value"] == "hosp-east"  # type: ignore[index]
    assert agents[2]["who"]["identifier"]["value"] == "emr-01"  # type: ignore[index]
    assert event["source"]["observer"]["identifier"]["value"] == "hosp-central"  # type: ignore[index]
    refs = [e["what"] for e in event["entity"]]  # type: ignore[attr-defined]
    assert {"reference": "Observation/o7/_history/1"} in refs
    assert {"identifier": {"system": "urn:medledger:pseudonym", "value": PSEUDONYM}} in refs
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "code"), [(200, "0"), (201, "0"), (304, "0"), (403, "4"), (404, "4"), (503, "8")]
)
def test_outcome_follows_the_http_status(status: int, code: str) -> None:
    """2xx/3xx are success (0), 4xx a minor failure (4), 5xx a serious failure (8)."""
    assert outcome_code(status) == code
    assert _fhir(read_record(1, status=status))["outcome"] == code


def test_search_query_holds_parameter_names_only() -> None:
    """entity.query is base64 of the parameter names joined by &, never their values."""
    rec = AuditRecord(LIS, "search-type", "E", 200, "search Observation", query=("code", "date"))
    event = _fhir(rec)
    AuditEvent.model_validate(event)
    query = next(e for e in event["entity"] if "query" in e)  # type: ignore[attr-defined]
    assert base64.b64decode(query["query"]) == b"code&date"
    assert event["agent"][0]["who"]["identifier"]["system"] == "urn:medledger:client"  # type: ignore[index]
    with pytest.raises(InputError) as info:
        AuditRecord(LIS, "search-type", "E", 200, query=("code=718-7",))
    assert info.value.field == "query[0]"


def test_break_glass_is_flagged_with_its_cleaned_reason() -> None:
    """Break-glass gives purpose BTG and the reason in the extension, long numbers masked."""
    caller = replace(DR_LI, break_glass="急诊抢救 call 13800138000\nnow")
    event = _fhir(read_record(1, caller))
    AuditEvent.model_validate(event)
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"  # type: ignore[index]
    reason = next(x for x in event["extension"] if x["url"] == BREAK_GLASS_URL)  # type: ignore[attr-defined]
    assert reason["valueString"] == "急诊抢救 call [number removed] now"
    assert read_record(1, caller).break_glass


def test_own_interactions_use_our_code_system() -> None:
    """certificate, token, admin, verify and login are not RESTful codes: our own system."""
    event = _fhir(AuditRecord(ANONYMOUS, "verify", "E", 200, "verify a certificate"))
    AuditEvent.model_validate(event)
    assert event["subtype"][0]["system"].endswith("/CodeSystem/interaction")  # type: ignore[index]
    assert event["agent"][0]["who"]["identifier"]["system"] == "urn:medledger:anonymous"  # type: ignore[index]
    assert len(event["agent"]) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("description", {"description": "read 张三's results"}),
        ("description", {"description": f"patient {ID_CARD}"}),
        ("description", {"description": "MRN 1234567"}),
        ("entities[0]", {"entities": ("张三",)}),
        ("entities[0]", {"entities": (ID_CARD,)}),
        ("entities[0]", {"entities": (f"Patient/{ID_CARD}",)}),
        ("entities[0]", {"entities": ("Observation?patient=p1",)}),
        ("patients[0]", {"patients": ("张三",)}),
        ("path", {"path": f"/fhir/R4/Patient/{ID_CARD}"}),
        ("path", {"path": "/fhir/R4/Patient?name=zhang"}),
        ("interaction", {"interaction": "peek"}),
        ("action", {"action": "X"}),
        ("status", {"status": 99}),
    ],
)
def test_phi_and_bad_fields_are_refused(field: str, kwargs: dict[str, object]) -> None:
    """A record that could carry a name or identifier is refused, and the error never echoes it."""
    args: dict[str, object] = {
        "caller": DR_LI,
        "interaction": "read",
        "action": "R",
        "status": 200,
        "description": "read",
    }
    args.update(kwargs)
    with pytest.raises(InputError) as info:
        AuditRecord(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    dumped = json.dumps(info.value.to_dict(), ensure_ascii=False)
    assert "张三" not in dumped
    assert ID_CARD not in dumped


def test_caller_fields_are_checked() -> None:
    """A principal, institution or address outside its alphabet is refused, naming the field."""
    for bad, field in (
        (replace(DR_LI, principal="李医生"), "caller.principal"),
        (replace(DR_LI, institution="Hosp East"), "caller.institution"),
        (replace(DR_LI, address="10.0.0.1; drop"), "caller.address"),
        (replace(DR_LI, purpose="treat"), "caller.purpose"),
    ):
        with pytest.raises(InputError) as info:
            read_record(1, bad)
        assert info.value.field == field


def test_identity_number_detection_needs_checksum_and_date() -> None:
    """Only an 18-character number with a valid check digit and birth date counts."""
    assert looks_like_id_number(ID_CARD)
    assert looks_like_id_number("x" + ID_CARD.lower())
    assert not looks_like_id_number("110105194912310021")  # wrong check digit
    assert not looks_like_id_number("550e8400-e29b-41d4-a716-446655440000")
    assert not looks_like_id_number("1101051949123100212")  # 19 digits: not an id number


def test_uuid_references_pass() -> None:
    """Server-assigned UUID ids (which contain long digit runs) are accepted as references."""
    rec = AuditRecord(
        DR_LI, "vread", "R", 200, entities=("Observation/550e8400-e29b-41d4-a716-446655440000",)
    )
    assert rec.entities == ("Observation/550e8400-e29b-41d4-a716-446655440000",)


def test_lockout_and_unlock_events_become_login_events() -> None:
    """A lockout is a failed login event (4) naming the account, with no secret in it."""
    policy = LockoutPolicy(threshold=1)
    _, events = policy.failure(LockState(), 1_000_000.0, ("user", "dr.li"))
    rec = access_record(events[0])
    assert (rec.interaction, rec.action, rec.outcome) == ("login", "E", "4")
    assert rec.entities == ("user/dr.li",)
    event = from_access_event(events[0], "hosp-central")
    AuditEvent.model_validate(event)
    assert event["recorded"] == events[0]["at"]
    _, unlock = policy.unlock(LockState(1, 2.0, 1), 3.0, ("client", "lis-01"), "root")
    rec = access_record(unlock[0])
    assert rec.caller.principal == "root"
    assert rec.entities == ("client/lis-01",)


def test_admin_events_keep_ids_and_roles_never_names() -> None:
    """An admin event keeps ids, roles and scopes; a display name never reaches the trail."""
    event = {
        "event": "access.user.add",
        "by": "root",
        "at": AT,
        "institution": "hosp-east",
        "ref": "user/dr.li",
        "roles": ["clinician@hosp-east"],
        "display_name": "李医生",
        "key_id": "0123456789abcdef",
    }
    rec = access_record(event)
    assert rec.interaction == "admin"
    assert rec.action == "C"
    assert rec.caller.institution == "hosp-east"
    assert set(rec.entities) == {"user/dr.li", "institution/hosp-east"}
    rendered = json.dumps(from_access_event(event, "n1"), ensure_ascii=False)
    assert "李医生" not in rendered
    assert "0123456789abcdef" not in rendered
    assert "clinician@hosp-east" in rendered
    with pytest.raises(InputError):
        access_record({"event": "something.else"})


def test_records_are_immutable_and_deduplicated() -> None:
    """Repeated refs are stored once; lists are accepted and become tuples."""
    rec = AuditRecord(
        Caller(kind=PrincipalKind.USER, principal="a", institution="hosp-a"),
        "history-instance",
        "R",
        200,
        entities=["Patient/p1", "Patient/p1"],  # type: ignore[arg-type]
    )
    assert rec.entities == ("Patient/p1",)
    with pytest.raises(AttributeError):
        rec.status = 500  # type: ignore[misc]
