"""The referral flow in its FHIR variant, over real HTTP: the member hospital posts a
ServiceRequest, the central hospital's LIS finds it (sharing policy), reports, corrects and
recalls; the member hospital is notified of each version by a signed Subscription rest-hook,
and the history shows every version."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from medledger.interop.delivery.signing import verify
from tests.identity import CENTRAL, MEMBER
from tests.interop.gateway.server import Hub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("interop-e2e")]

SECRET = "a-shared-secret-of-more-than-32-characters"


class HookReceiver:
    """The member hospital's FHIR endpoint: keeps every verified notification."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.bad: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("X-MedLedger-Signature", "")
                if verify(SECRET.encode(), body, header, now=time.time()):
                    outer.received.append(json.loads(body))
                else:
                    outer.bad.append(header)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_referral_flow_over_fhir(hub: Hub) -> None:
    """Order, report, correction and recall over FHIR; three signed notifications."""
    with HookReceiver() as hook, hub.http("dr-member") as member, hub.http("dr-central") as lis:
        sub = member.post(
            "/fhir/R4/Subscription",
            json={
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "results of our referrals",
                "criteria": "DiagnosticReport",
                "channel": {
                    "type": "rest-hook",
                    "endpoint": hook.url,
                    "payload": "application/fhir+json",
                    "extension": [
                        {"url": "urn:medledger:subscription-secret", "valueString": SECRET}
                    ],
                },
            },
        )
        assert sub.status_code == 201, sub.text
        bad = member.post(
            "/fhir/R4/Subscription",
            json={"resourceType": "Subscription", "status": "active", "reason": "x",
                  "criteria": "DiagnosticReport", "channel": {"type": "email"}},
        )  # fmt: skip
        assert bad.status_code == 422  # only rest-hook with a secret is deliverable
        patient = member.post(
            "/fhir/R4/Patient",
            json={"resourceType": "Patient", "name": [{"text": "张伟"}], "gender": "male"},
        ).json()
        order = member.post(
            "/fhir/R4/ServiceRequest",
            json={
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "identifier": [{"system": f"urn:medledger:id:{MEMBER}:placer", "value": "SQ9"}],
                "code": {"coding": [{"system": "urn:medledger:dict:" + MEMBER, "code": "CT0101"}]},
                "subject": {"reference": f"Patient/{patient['id']}"},
                "performer": [
                    {"identifier": {"system": "urn:medledger:institution", "value": CENTRAL}}
                ],
            },
        )
        assert order.status_code == 201, order.text
        # The central LIS finds the referred order through the sharing policy.
        found = lis.get("/fhir/R4/ServiceRequest", params={"identifier": "SQ9"}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [order.json()["id"]]
        report = {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"coding": [{"system": "urn:medledger:dict:" + CENTRAL, "code": "300101"}]},
            "basedOn": [{"reference": f"ServiceRequest/{order.json()['id']}"}],
            "subject": {"reference": f"Patient/{patient['id']}"},
            "conclusion": "右肺下叶微小结节。",
        }
        made = lis.post("/fhir/R4/DiagnosticReport", json=report)
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        for status, text in (("corrected", "右肺下叶结节约6mm。"), ("entered-in-error", "作废")):
            changed = lis.put(
                f"/fhir/R4/DiagnosticReport/{rid}",
                json={**report, "id": rid, "status": status, "conclusion": text},
            )
            assert changed.status_code == 200, changed.text
        deadline = time.monotonic() + 30
        while len(hook.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hook.bad == []
        # One notification per version (their arrival order is not guaranteed: retries and
        # parallel sends may reorder them; each carries its meta.versionId).
        by_version = {r["meta"]["versionId"]: r["status"] for r in hook.received}
        assert by_version == {"1": "final", "2": "corrected", "3": "entered-in-error"}
        history = member.get(f"/fhir/R4/DiagnosticReport/{rid}/_history").json()
        assert [e["resource"]["status"] for e in history["entry"]] == [
            "entered-in-error",
            "corrected",
            "final",
        ]
