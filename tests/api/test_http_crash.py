"""kill -9 the real `medledger serve` under concurrent FHIR writes: records and ledger agree.

Issue: "Requests are acknowledged only after the ledger entry is durable. The two must never
diverge. A crash between the store write and the ledger append must be either rolled back or
completed by recovery at startup." (docs/decisions.md D15.)

Client threads write over HTTP (creates, conditional creates, updates with If-Match, deletes,
transaction Bundles) while the server process is SIGKILLed at random instants and restarted on
the same data directory. Every write carries a unique tag (an identifier under ``OP_SYSTEM``),
so each stored version can be traced back to the one request that made it. Checked:

* at every crash point, before recovery runs: each acknowledged version is already anchored at
  its acknowledged ``X-Ledger-Index``; every ``record.*`` ledger entry has its anchored version
  and every anchored version its entry (a version may only be *pending*, never half-anchored);
* after each restart: the tree grew by exactly the number of pending versions (recovery);
* at the end, over HTTP: every acknowledged version reads back exactly as acknowledged, with its
  ledger index, and its certificate verifies offline against the payload; acknowledged deletes
  read as 410;
* at the end, in the store: nothing pending, ledger ``record.*`` entries and versions map one to
  one (no duplicates), every version was made by a request that was acknowledged or never
  answered (a rejected or refused request left nothing), no request was applied twice, each
  transaction Bundle is all or nothing, version ids have no gaps; then ``medledger audit
  --records`` exits 0.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from medledger.crypto.trust import TrustBundle, load_trust_bundle
from medledger.ledger.config import TRUST_FILE, db_url, read_config
from medledger.ledger.node import LedgerNode
from medledger.records.service import RecordService
from medledger.store.engine import READ_ONLY, make_engine
from medledger.store.schema import ledger_entries
from medledger.store.schema_records import record_versions
from medledger.verify.certificate import parse_certificate, verify_certificate
from tests.identity import provision

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

OP_SYSTEM = "urn:medledger-crash:op"
COND_SYSTEM = "urn:medledger-crash:cond"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "/fhir/R4"
KILLS = 5
THREADS = 6
READY_TIMEOUT = 60.0
BIN = Path(sys.executable).parent / "medledger"
CLI = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "medledger.cli.main"]


# -- the server process --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


AUTH: dict[str, str] = {}  # the Authorization header of the writers (set by the test)


class Server:
    """``medledger serve`` as a child process on a fresh loopback port each start."""

    def __init__(self, data: Path, db: str | None, log: Path) -> None:
        self.data, self.db, self.log = data, db, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> int:
        """Start and wait for /readyz; return the tree size it reports."""
        port = _free_port()
        # Audit batches only when the test asks (none here): the tree must grow by exactly
        # the pending versions at each restart.
        argv = [*CLI, "serve", "--data", str(self.data), "--port", str(port)]
        argv += ["--audit-interval", "3600"]
        if self.db is not None and not self.data.exists():
            argv += ["--db", self.db]
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited {self.proc.returncode}: {self.tail()}")
                try:
                    resp = client.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if resp.status_code == 200:
                    return int(resp.json()["tree_size"])
                time.sleep(0.05)
        raise AssertionError(f"server not ready within {READY_TIMEOUT} s: {self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL
        self.proc = None

    def stop(self) -> int:
        """SIGTERM (a clean shutdown) and return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.proc = None
        return code

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        self.proc = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# -- what the clients did ------------------------------------------------------------------


@dataclass
class Ack:
    """One version a 2xx response acknowledged."""

    rtype: str
    rid: str
    vid: int
    index: int | None  # X-Ledger-Index (None: no new version, e.g. a repeated delete)
    deleted: bool = False
    body: dict[str, Any] | None = None  # the exact body the server returned
    sent: dict[str, Any] | None = None  # a Bundle entry's resource as sent, urn:uuid resolved

    @property
    def ref(self) -> str:
        return f"{self.rtype}/{self.rid}/_history/{self.vid}"


@dataclass
class Op:
    kind: str  # create | cond_create | obs_create | put_create | update | delete | bundle
    cycle: int
    tags: list[str] = field(default_factory=list)  # one per version the request would write
    target: tuple[str, str] | None = None  # update / delete
    started: float = 0.0
    outcome: str = "not-sent"  # ack | rejected | refused | unknown | server-error
    status: int | None = None
    acks: list[Ack] = field(default_factory=list)
    matched: bool = False  # a conditional create that found its match (writes nothing)


@dataclass
class Known:
    vid: int
    deleted: bool
    cond: str | None = None
    subject: str | None = None


def _tag() -> str:
    return uuid.uuid4().hex


def _patient(tag: str, rnd: random.Random, cond: str | None = None) -> dict[str, Any]:
    ids = [{"system": OP_SYSTEM, "value": tag}]
    if cond is not None:
        ids.insert(0, {"system": COND_SYSTEM, "value": cond})
    return {
        "resourceType": "Patient",
        "identifier": ids,
        "name": [{"family": rnd.choice(["Wang", "Li", "Zhang", "Chen"]), "given": ["Wei"]}],
        "gender": rnd.choice(["male", "female"]),
        "birthDate": f"19{rnd.randint(30, 99)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}",
    }


def _observation(tag: str, rnd: random.Random, subject: str | None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": OP_SYSTEM, "value": tag}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "valueQuantity": {"value": rnd.randint(80, 180), "unit": "g/L"},
    }
    if subject is not None:
        obs["subject"] = {"reference": subject}
    return obs


def _etag(resp: httpx.Response) -> int:
    return int(resp.headers["ETag"].removeprefix("W/").strip('"'))


def _index(resp: httpx.Response) -> int | None:
    value = resp.headers.get("X-Ledger-Index")
    return None if value is None else int(value)


class Workload:
    """Concurrent FHIR writers; every request and its outcome is recorded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: list[Op] = []
        self.known: dict[tuple[str, str], Known] = {}
        self.acks_in_cycle: Counter[int] = Counter()
        self.errors: list[BaseException] = []

    # Bookkeeping ---------------------------------------------------------------------------

    def _send(
        self, client: httpx.Client, op: Op, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        with self.lock:
            self.ops.append(op)
        op.started = time.monotonic()
        try:
            resp = client.request(method, url, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            op.outcome = "refused"  # never reached a server: nothing can have been written
            return None
        except httpx.TransportError:
            op.outcome = "unknown"  # sent, no answer: the server may or may not have written it
            return None
        op.status = resp.status_code
        if resp.status_code >= 500:
            op.outcome = "server-error"
            return None
        if resp.status_code >= 400:
            op.outcome = "rejected"
            return None
        op.outcome = "ack"
        with self.lock:
            self.acks_in_cycle[op.cycle] += 1
        return resp

    def _remember(self, ack: Ack, cond: str | None = None, subject: str | None = None) -> None:
        with self.lock:
            old = self.known.get((ack.rtype, ack.rid))
            if old is None or old.vid < ack.vid:
                self.known[(ack.rtype, ack.rid)] = Known(
                    ack.vid,
                    ack.deleted,
                    cond if old is None else old.cond,
                    subject if old is None else old.subject,
                )

    def _pick(self, rnd: random.Random, rtype: str | None = None) -> tuple[str, str, Known] | None:
        with self.lock:
            live = [
                (k, v)
                for k, v in self.known.items()
                if not v.deleted and (rtype is None or k[0] == rtype)
            ]
        if not live:
            return None
        (t, i), known = rnd.choice(live)
        return t, i, known

    # The writes ----------------------------------------------------------------------------

    def run(self, url: str, cycle: int, rnd: random.Random, stop: threading.Event) -> None:
        kinds = ["create", "cond_create", "obs", "put_create", "update", "delete", "bundle"]
        weights = [12, 10, 12, 5, 22, 8, 16]
        try:
            with httpx.Client(base_url=url, timeout=20, headers=AUTH) as client:
                while not stop.is_set():
                    kind = rnd.choices(kinds, weights)[0]
                    getattr(self, f"_{kind}")(client, cycle, rnd)
        except Exception as exc:  # an unexpected answer: reported by the test, not the thread
            with self.lock:
                self.errors.append(exc)

    def _create(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        op = Op("create", cycle, [_tag()])
        body = _patient(op.tags[0], rnd)
        resp = self._send(client, op, "POST", f"{BASE}/Patient", json=body, headers=FHIR_JSON)
        if resp is not None:
            assert resp.status_code == 201, resp.text
            self._ack_single(op, "Patient", resp)

    def _cond_create(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        op = Op("cond_create", cycle, [_tag()])
        cond = f"c{rnd.randrange(6)}"
        headers = {**FHIR_JSON, "If-None-Exist": f"identifier={COND_SYSTEM}|{cond}"}
        body = _patient(op.tags[0], rnd, cond)
        resp = self._send(client, op, "POST", f"{BASE}/Patient", json=body, headers=headers)
        if resp is not None:
            assert resp.status_code in (200, 201), resp.text
            op.matched = resp.status_code == 200
            self._ack_single(op, "Patient", resp, cond=cond)

    def _obs(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        op = Op("obs_create", cycle, [_tag()])
        picked = self._pick(rnd, "Patient") if rnd.random() < 0.8 else None
        subject = None if picked is None else f"Patient/{picked[1]}"
        body = _observation(op.tags[0], rnd, subject)
        resp = self._send(client, op, "POST", f"{BASE}/Observation", json=body, headers=FHIR_JSON)
        if resp is not None:
            assert resp.status_code == 201, resp.text
            self._ack_single(op, "Observation", resp, subject=subject)

    def _put_create(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        rid = f"put-{uuid.uuid4().hex[:16]}"
        op = Op("put_create", cycle, [_tag()], target=("Patient", rid))
        body = {**_patient(op.tags[0], rnd), "id": rid}
        resp = self._send(client, op, "PUT", f"{BASE}/Patient/{rid}", json=body, headers=FHIR_JSON)
        if resp is not None:
            assert resp.status_code == 201, resp.text
            self._ack_single(op, "Patient", resp)

    def _update(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        picked = self._pick(rnd)
        if picked is None:
            return
        rtype, rid, known = picked
        vid = known.vid
        if rnd.random() < 0.5:  # read-modify-write: learn the current version first
            try:
                got = client.get(f"{BASE}/{rtype}/{rid}")
            except httpx.TransportError:
                time.sleep(0.01)
                return
            if got.status_code != 200:
                return
            vid = _etag(got)
        op = Op("update", cycle, [_tag()], target=(rtype, rid))
        if rtype == "Patient":
            body = {**_patient(op.tags[0], rnd, known.cond), "id": rid}
        else:
            body = {**_observation(op.tags[0], rnd, known.subject), "id": rid}
        headers = {**FHIR_JSON, "If-Match": f'W/"{vid}"'}
        resp = self._send(client, op, "PUT", f"{BASE}/{rtype}/{rid}", json=body, headers=headers)
        if resp is not None:
            assert resp.status_code == 200, resp.text
            self._ack_single(op, rtype, resp)

    def _delete(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        picked = self._pick(rnd)
        if picked is None:
            return
        rtype, rid, known = picked
        op = Op("delete", cycle, target=(rtype, rid))
        headers = {"If-Match": f'W/"{known.vid}"'} if rnd.random() < 0.5 else {}
        resp = self._send(client, op, "DELETE", f"{BASE}/{rtype}/{rid}", headers=headers)
        if resp is not None:
            assert resp.status_code == 204, resp.text
            ack = Ack(rtype, rid, _etag(resp), _index(resp), deleted=True)
            op.acks.append(ack)
            self._remember(ack)

    def _bundle(self, client: httpx.Client, cycle: int, rnd: random.Random) -> None:
        """A transaction: a new Patient, 1-4 Observations of it, maybe an If-Match update."""
        n = rnd.randint(2, 5)
        op = Op("bundle", cycle, [_tag() for _ in range(n)])
        patient_url = f"urn:uuid:{uuid.uuid4()}"
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": patient_url,
                "resource": _patient(op.tags[0], rnd),
                "request": {"method": "POST", "url": "Patient"},
            }
        ]
        update = self._pick(rnd, "Observation") if rnd.random() < 0.3 else None
        for k in range(1, n):
            if k == n - 1 and update is not None:
                _, rid, known = update
                obs = {**_observation(op.tags[k], rnd, patient_url), "id": rid}
                entries.append(
                    {
                        "resource": obs,
                        "request": {
                            "method": "PUT",
                            "url": f"Observation/{rid}",
                            "ifMatch": f'W/"{known.vid}"',
                        },
                    }
                )
            else:
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": _observation(op.tags[k], rnd, patient_url),
                        "request": {"method": "POST", "url": "Observation"},
                    }
                )
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        resp = self._send(client, op, "POST", BASE, json=bundle, headers=FHIR_JSON)
        if resp is None:
            return
        assert resp.status_code == 200, resp.text
        out = resp.json()["entry"]
        assert len(out) == n
        locs = [e["response"]["location"].split("/") for e in out]
        patient_ref = f"Patient/{locs[0][1]}"
        for e, sent, loc in zip(out, entries, locs, strict=True):
            rtype, rid, _, vid = loc
            ext = e["response"].get("extension", [])
            index = ext[0]["valueInteger"] if ext else None
            resolved = json.loads(json.dumps(sent["resource"]).replace(patient_url, patient_ref))
            ack = Ack(rtype, rid, int(vid), index, sent=resolved)
            op.acks.append(ack)
            self._remember(ack, subject=patient_ref if rtype == "Observation" else None)

    def _ack_single(
        self,
        op: Op,
        rtype: str,
        resp: httpx.Response,
        *,
        cond: str | None = None,
        subject: str | None = None,
    ) -> None:
        body = resp.json()
        ack = Ack(rtype, body["id"], _etag(resp), _index(resp), body=body)
        assert body["meta"]["versionId"] == str(ack.vid)
        if not op.matched:
            assert ack.index is not None, f"{ack.ref} acknowledged without X-Ledger-Index"
        op.acks.append(ack)
        self._remember(ack, cond=cond, subject=subject)

    # Views ---------------------------------------------------------------------------------

    def new_versions(self) -> list[Ack]:
        """Every acknowledged version that the request itself wrote."""
        return [
            a
            for op in self.ops
            if op.outcome == "ack" and not op.matched
            for a in op.acks
            if a.index is not None
        ]


# -- looking at the database while no server runs -------------------------------------------


@dataclass
class Snapshot:
    entries: int
    record_entries: dict[str, int]  # ref -> ledger index
    versions: dict[str, Any]  # ref -> row
    pending: int


@contextmanager
def _db(data: Path) -> Iterator[Any]:
    engine = make_engine(db_url(data, read_config(data)))
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            yield conn
    finally:
        engine.dispose()


def snapshot(data: Path) -> Snapshot:
    """Read versions and ledger entries straight from the database (the server is dead)."""
    v = record_versions.c
    with _db(data) as conn:
        rows = conn.execute(
            select(v.rtype, v.rid, v.vid, v.deleted, v.state, v.ledger_index, v.entry)
        ).all()
        entries = conn.execute(
            select(ledger_entries.c.idx, ledger_entries.c.data).order_by(ledger_entries.c.idx)
        ).all()
    assert [int(e.idx) for e in entries] == list(range(len(entries))), "gap in the ledger"
    record: dict[str, int] = {}
    for e in entries:
        parsed = json.loads(bytes(e.data))
        if parsed.get("type") in ("record.put", "record.delete"):
            ref = parsed["ref"]
            assert ref not in record, f"{ref} is on the ledger twice: {record[ref]}, {e.idx}"
            record[ref] = int(e.idx)
    versions = {f"{r.rtype}/{r.rid}/_history/{r.vid}": r for r in rows}
    data_at = {int(e.idx): bytes(e.data) for e in entries}
    for ref, index in record.items():
        row = versions.get(ref)
        assert row is not None, f"ledger entry {index} certifies {ref}, which is not stored"
        assert row.state == "anchored", f"{ref} has ledger entry {index} but is {row.state}"
        assert row.ledger_index == index, f"{ref} anchored at {row.ledger_index}, entry {index}"
        assert bytes(row.entry) == data_at[index], f"{ref}: stored entry differs from the log"
    pending = 0
    for ref, row in versions.items():
        if row.state == "pending":
            pending += 1
            assert row.ledger_index is None
        else:
            assert row.state == "anchored", f"{ref} is in state {row.state!r}"
            assert record.get(ref) == row.ledger_index, f"{ref} anchored without its entry"
    return Snapshot(len(entries), record, versions, pending)


def check_acks_durable(snap: Snapshot, acks: list[Ack]) -> None:
    """Acknowledged means durable: anchored at its index already, before any recovery."""
    for ack in acks:
        row = snap.versions.get(ack.ref)
        assert row is not None, f"acknowledged {ack.ref} is not stored after kill -9"
        assert row.state == "anchored", f"acknowledged {ack.ref} is {row.state} after kill -9"
        assert row.ledger_index == ack.index, f"{ack.ref}: index {row.ledger_index} != {ack.index}"
        assert bool(row.deleted) == ack.deleted


# -- the end state ---------------------------------------------------------------------------


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def _check_ack(client: httpx.Client, trust: TrustBundle, ack: Ack) -> dict[str, Any] | None:
    """Read one acknowledged version back and verify its certificate; None for a delete."""
    path = f"{BASE}/{ack.ref}"
    got = client.get(path)
    if ack.deleted:
        assert got.status_code == 410, f"deleted {ack.ref}: {got.status_code}"
        return None
    assert got.status_code == 200, f"acknowledged {ack.ref}: {got.text}"
    stored = got.json()
    if ack.body is not None:
        assert stored == ack.body, f"{ack.ref} reads back differently"
    else:
        assert ack.sent is not None
        assert _strip(stored) == _strip(ack.sent), f"{ack.ref} differs from what was sent"
        assert stored["meta"]["versionId"] == str(ack.vid)
    assert ack.index is None or _index(got) == ack.index, ack.ref
    cert_resp = client.get(f"{path}/$certificate")
    assert cert_resp.status_code == 200, cert_resp.text
    cert = parse_certificate(cert_resp.json())
    report = verify_certificate(cert, trust, payload=got.content)  # raises if invalid
    assert any("payload" in p for p in report.passed)
    assert cert.entry["ref"] == ack.ref
    assert ack.index is None or cert.leaf_index == ack.index
    return {"certificate": cert_resp.json(), "payload": stored}


def verify_over_http(url: str, data: Path, work: Workload) -> dict[str, Any]:
    """Read back every acknowledged version, check its ledger index and its certificate."""
    trust = load_trust_bundle(data / TRUST_FILE)
    acks = [a for op in work.ops if op.outcome == "ack" for a in op.acks]
    limits = httpx.Limits(max_connections=8)
    with (
        httpx.Client(base_url=url, timeout=30, limits=limits, headers=AUTH) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        results = list(pool.map(lambda a: _check_ack(client, trust, a), acks))
    samples = [r for r in results if r is not None]
    checked = {"versions": len(samples), "deletes": len(results) - len(samples)}
    return {"checked": checked, "sample": samples[-1]}


def check_store(data: Path, work: Workload) -> dict[str, int]:
    """Trace every stored version to the request that wrote it; all of them anchored once."""
    snap = snapshot(data)
    assert snap.pending == 0, f"{snap.pending} versions still pending after recovery"
    assert set(snap.record_entries) == set(snap.versions), "ledger and store hold other refs"
    check_acks_durable(snap, work.new_versions())

    tag_owner: dict[str, tuple[Op, int]] = {}
    for op in work.ops:
        for k, tag in enumerate(op.tags):
            tag_owner[tag] = (op, k)
    found: dict[str, str] = {}  # tag -> ref
    tombstones: dict[tuple[str, str], list[int]] = defaultdict(list)
    vids: dict[tuple[str, str], list[int]] = defaultdict(list)
    with LedgerNode.open(data) as node:
        service = RecordService.open(node, recover=False)
        for ref, row in snap.versions.items():
            vids[(row.rtype, row.rid)].append(int(row.vid))
            if row.deleted:
                tombstones[(row.rtype, row.rid)].append(int(row.vid))
                continue
            resource = service.store.load(row.rtype, row.rid, int(row.vid)).resource
            tags = [i["value"] for i in resource["identifier"] if i["system"] == OP_SYSTEM]
            assert len(tags) == 1, f"{ref} carries tags {tags}"
            assert tags[0] not in found, f"one request wrote {found[tags[0]]} and {ref}"
            assert tags[0] in tag_owner, f"{ref} was written by no request of this test"
            found[tags[0]] = ref

    for key, have in vids.items():
        assert sorted(have) == list(range(1, len(have) + 1)), f"{key} has version ids {have}"

    stats: Counter[str] = Counter()
    for op in work.ops:
        present = [t for t in op.tags if t in found]
        if op.kind == "delete":
            continue  # a tombstone carries no tag: checked per resource below
        if op.outcome == "ack" and not op.matched:
            assert len(present) == len(op.tags), f"acknowledged {op.kind} lost versions"
            for ack, tag in zip(op.acks, op.tags, strict=True):
                assert found[tag] == ack.ref, f"{op.kind}: tag at {found[tag]}, acked {ack.ref}"
        elif op.outcome in ("unknown", "server-error"):
            if op.kind == "bundle":
                assert len(present) in (0, len(op.tags)), (
                    f"transaction Bundle half applied: {len(present)} of {len(op.tags)} entries"
                )
            if op.tags:
                stats["unanswered completed" if present else "unanswered absent"] += 1
        else:  # rejected, refused, or a conditional create that matched: wrote nothing
            assert not present, f"{op.kind} answered {op.outcome}/{op.status} yet wrote {present}"

    for key, have in tombstones.items():
        acked = {
            a.vid
            for op in work.ops
            if op.kind == "delete" and op.outcome == "ack"
            for a in op.acks
            if a.index is not None and (a.rtype, a.rid) == key
        }
        unanswered = sum(
            1
            for op in work.ops
            if op.kind == "delete"
            and op.target == key
            and op.outcome in ("unknown", "server-error")
        )
        extra = set(have) - acked
        assert acked <= set(have), f"acknowledged delete of {key} missing"
        assert len(extra) <= unanswered, f"{key}: tombstones {sorted(extra)} from no request"
        stats["unanswered deletes completed"] += len(extra)
    stats["versions"] = len(snap.versions)
    stats["ledger entries"] = snap.entries
    return dict(stats)


# -- the test ---------------------------------------------------------------------------------


def test_kill9_over_http_never_diverges(tmp_path: Path, db_url: str | None) -> None:
    """Five SIGKILLs of a serving node under concurrent writes; then everything adds up."""
    t0 = time.monotonic()
    seed = int(os.environ.get("CRASH_SEED", "20261122"))
    rnd = random.Random(seed)
    data = tmp_path / "data"
    # The accounts first (as `medledger admin` would make them), then `medledger serve`.
    node = LedgerNode.init(data, db=db_url, node="hosp-central")
    AUTH.update(provision(node).headers("hub"))
    node.close()
    server = Server(data, db_url, tmp_path / "server.log")
    work = Workload()
    cycles: list[dict[str, Any]] = []
    try:
        size = server.start()
        assert size == 0
        for cycle in range(KILLS):
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=work.run,
                    args=(server.url, cycle, random.Random(f"{seed}-{cycle}-{t}"), stop),
                    daemon=True,
                )
                for t in range(THREADS)
            ]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while work.acks_in_cycle[cycle] == 0:
                assert time.monotonic() < deadline, f"no write acknowledged: {server.tail()}"
                assert not work.errors, f"a client failed: {work.errors[0]!r}"
                time.sleep(0.01)
            time.sleep(rnd.uniform(0.2, 1.5))
            killed_at = time.monotonic()
            server.kill()
            stop.set()
            for t in threads:
                t.join(30)
                assert not t.is_alive(), "a client thread hangs"
            assert not work.errors, f"a client failed: {work.errors[0]!r}"
            ops = [op for op in work.ops if op.cycle == cycle]
            assert all(op.outcome != "not-sent" for op in ops)
            snap = snapshot(data)  # the crash point itself, before recovery
            check_acks_durable(snap, work.new_versions())
            entries, pending = snap.entries, snap.pending
            size = server.start()  # recovery appends the pending versions, then serves
            assert size == entries + pending, (
                f"after restart the tree has {size} entries; {entries} + {pending} pending "
                "expected: recovery did not append exactly the pending versions"
            )
            cycles.append(
                {
                    "acks": work.acks_in_cycle[cycle],
                    "in_flight_at_kill": sum(
                        op.outcome in ("unknown", "server-error") and op.started < killed_at
                        for op in ops
                    ),
                    "pending_at_kill": pending,
                    "entries_at_kill": entries,
                }
            )
        phases = {"kill_cycles": round(time.monotonic() - t0, 1)}
        http = verify_over_http(server.url, data, work)
        phases["http_checks"] = round(time.monotonic() - t0, 1)
        # uvicorn drains the open requests; serve then closes the node and exits 0.
        assert server.stop() == 0, server.tail()
        stats = check_store(data, work)
        phases["store_checks"] = round(time.monotonic() - t0, 1)

        cert, payload = tmp_path / "cert.json", tmp_path / "payload.json"
        cert.write_text(json.dumps(http["sample"]["certificate"]))
        payload.write_text(json.dumps(http["sample"]["payload"]))
        trust = data / TRUST_FILE
        verify = subprocess.run(
            [*CLI, "verify", str(cert), "--payload", str(payload), "--trust", str(trust)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        audit = subprocess.run(
            [*CLI, "audit", "--data", str(data), "--records", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        server.cleanup()

    outcomes = Counter(op.outcome for op in work.ops)
    summary = {
        "db": "sqlite" if db_url is None else "postgresql",
        "seed": seed,
        "kills": len(cycles),
        "cycles": cycles,
        "outcomes": dict(outcomes),
        "kinds": dict(Counter(op.kind for op in work.ops if op.outcome == "ack")),
        "acked_versions": len(work.new_versions()),
        # Conditional creates answered with a match whose version was not anchored yet.
        "matched_unanchored": sum(
            op.matched and op.acks[0].index is None for op in work.ops if op.outcome == "ack"
        ),
        "http_checked": http["checked"],
        "store": stats,
        "seconds": round(time.monotonic() - t0, 1),
        "phases": phases,
    }
    print(json.dumps(summary))
    assert len(cycles) == KILLS
    assert all(c["acks"] > 0 for c in cycles)
    assert outcomes["server-error"] == 0, "a write got a 5xx: its outcome is unknowable"
    # A conditional create that matched another request's version answers only once that
    # version is on the ledger (an answer without X-Ledger-Index would be an unanchored ack).
    assert summary["matched_unanchored"] == 0
    assert sum(c["in_flight_at_kill"] for c in cycles) > 0, "no kill landed mid-request"
    checked = http["checked"].get("versions", 0) + http["checked"].get("deletes", 0)
    assert checked >= len(work.new_versions()) > 0
