"""Seed the hub demo over real HTTP: the story's steps as FHIR transaction Bundles.

The member hospital's referrals go first, then the central hospital's results (报告回传), then
one imaging report is corrected (PUT version 2 ``amended`` with ``If-Match``) and one lab report
recalled (``entered-in-error``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from medledger.demo_story import Episode, Step, Story, corrected, recalled
from medledger.samples.fhir_parts import BASE

FHIR = "/fhir/R4"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@dataclass
class Seeded:
    """What the printed examples need: the server's ids of a few chosen resources."""

    linker: Linker
    transactions: int
    corrected: str  # "DiagnosticReport/<id>", now at version 2 (amended)
    recalled: str  # "DiagnosticReport/<id>", now at version 2 (entered-in-error)
    episode: Episode  # the corrected report's episode


def seed(central: httpx.Client, member: httpx.Client, story: Story) -> Seeded:
    """Post the whole story and return the ids the examples use.

    ``member`` is the member hospital's HIS (it places the referrals), ``central`` the central
    hospital's LIS/PACS (master data, results, corrections): each request is made by the
    system that would make it, so every record belongs to the institution that wrote it.
    """
    linker = Linker()
    steps = [(central, story.master)]
    steps += [(member, e.referral) for e in story.episodes]
    steps += [(central, e.results) for e in story.episodes]
    for client, step in steps:
        r = client.post(FHIR, json=linker.bundle(step), headers=FHIR_JSON)
        _ok(r, step.title)
        linker.learn(step, r.json())
    client = central
    episode, ct = story.report("CT")
    _, lab = story.report("CBC", 1)
    for report, version in ((ct, corrected(ct)), (lab, recalled(lab))):
        r = client.put(
            f"{FHIR}/{linker.ref(report)}",
            json=linker.resolve(version),
            headers={**FHIR_JSON, "If-Match": 'W/"1"'},
        )
        _ok(r, f"{version['status']} {linker.ref(report)}")
    return Seeded(linker, len(steps), linker.ref(ct), linker.ref(lab), episode)


def _ok(r: httpx.Response, what: str) -> None:
    if r.status_code >= 300:
        raise RuntimeError(f"seeding failed at {what}: HTTP {r.status_code} {r.text[:500]}")


class Linker:
    """Turn steps into transaction Bundles, remembering the ids the server assigned.

    New resources are POSTed with ``urn:uuid`` fullUrls that the server resolves; references to
    resources of earlier steps are rewritten to the ids it assigned then.
    """

    def __init__(self) -> None:
        self.assigned: dict[str, str] = {}  # local "Type/id" → the server's "Type/id"

    def ref(self, resource: dict[str, Any]) -> str:
        local = f"{resource['resourceType']}/{resource['id']}"
        return self.assigned.get(local, local)

    def resolve(self, resource: Any, new: dict[str, str] | None = None) -> Any:
        """Return ``resource`` with server ids (``new``: this Bundle's local ref → urn:uuid)."""
        new = new or {}
        if isinstance(resource, list):
            return [self.resolve(v, new) for v in resource]
        if not isinstance(resource, dict):
            return resource
        out = {}
        for k, v in resource.items():
            if k == "reference" and isinstance(v, str):
                out[k] = new.get(v) or self.assigned.get(v, v)
            else:
                out[k] = self.resolve(v, new)
        if "resourceType" in resource and "id" in resource:
            out["id"] = self.ref(resource).split("/", 1)[1]
        return out

    def bundle(self, step: Step) -> dict[str, Any]:
        new = {
            f"{w.resource['resourceType']}/{w.resource['id']}": "urn:uuid:"
            + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE}/{self.ref(w.resource)}"))
            for w in step.writes
            if w.method == "POST"
        }
        entries = []
        for w in step.writes:
            resource, local = self.resolve(w.resource, new), self.ref(w.resource)
            request: dict[str, Any] = {"method": w.method, "url": local}
            entry: dict[str, Any] = {"resource": resource, "request": request}
            if w.method == "POST":
                del resource["id"]
                entry["fullUrl"], request["url"] = new[local], w.resource["resourceType"]
            if w.if_none_exist:
                request["ifNoneExist"] = w.if_none_exist
            if w.if_match is not None:
                request["ifMatch"] = f'W/"{w.if_match}"'
            entries.append(entry)
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    def learn(self, step: Step, response: dict[str, Any]) -> None:
        """Remember the ids the server assigned, from a ``transaction-response``."""
        for w, entry in zip(step.writes, response["entry"], strict=True):
            rtype, rid = entry["response"]["location"].split("/")[:2]
            self.assigned[f"{w.resource['resourceType']}/{w.resource['id']}"] = f"{rtype}/{rid}"
