"""``medledger bench api``: the FHIR API over real HTTP, against a peer on the same machine.

Phases, each against a freshly started ``medledger serve`` (or ``--url``):

1. transaction-Bundle ingest (every supported type, urn:uuid references): resources/s;
2. the mixed workload (40 % reads, 30 % searches, 30 % creates and updates) in open loop at a
   fixed rate over ``connections`` persistent connections: requests/s, p50/p95/p99, errors;
3. the same mix in closed loop (every connection busy): the saturation throughput;
4. every acknowledged write carries a distinct ledger index, and the ledger grew by exactly the
   number of acknowledged writes.

The peer is the same stack (FastAPI on uvicorn, one process) serving the same URLs from a dict,
without validation, encryption, database or ledger: the ratio is the price of those guarantees.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from medledger.benchmarks.http_load import LoadResult, Outcome, Request, run_load
from medledger.benchmarks.processes import stop_process
from medledger.errors import EnvironmentFailure, InputError
from medledger.samples.bundles import as_transaction
from medledger.samples.fhir import clinical_set

Progress = Callable[[str], None]
FHIR = {"Content-Type": "application/fhir+json"}
READ_TYPES = ("Patient", "ServiceRequest", "Specimen", "Observation", "DiagnosticReport")


class Workload:
    """The mixed request stream, fed by what ingest created and by the writes' answers."""

    def __init__(self, pools: dict[str, list[str]], codes: list[str], seed: int = 1) -> None:
        self.pools = pools
        self.codes = codes
        self.rng = random.Random(seed)
        self.acked: list[int] = []  # ledger indexes of acknowledged writes
        self.unanchored = 0  # acknowledged writes without a ledger index (must stay 0)

    def next(self) -> Request:
        roll = self.rng.random()
        if roll < 0.40:
            rtype = self.rng.choice(READ_TYPES)
            return Request("GET", f"/fhir/R4/{rtype}/{self._pick(rtype)}", kind="read")
        if roll < 0.70:
            return self._search()
        patient = self._pick("Patient")
        if roll < 0.85:
            body = self._observation(patient)
            return Request("POST", "/fhir/R4/Observation", body, FHIR, kind="create")
        oid = self._pick("Observation")
        body = self._observation(patient, oid)
        return Request("PUT", f"/fhir/R4/Observation/{oid}", body, FHIR, kind="update")

    def done(self, outcome: Outcome) -> None:
        if outcome.request.kind not in ("create", "update") or outcome.status not in (200, 201):
            return
        index = outcome.headers.get("X-Ledger-Index")
        if index is None:
            self.unanchored += 1
        else:
            self.acked.append(int(index))
        if outcome.request.kind == "create":
            location = outcome.headers.get("Location", "")
            parts = location.split("/")
            if len(parts) >= 5:
                self.pools["Observation"].append(parts[4])

    def _pick(self, rtype: str) -> str:
        return self.rng.choice(self.pools[rtype])

    def _search(self) -> Request:
        kind = self.rng.randrange(5)
        patient = self._pick("Patient")
        if kind == 0:
            q = f"Observation?patient=Patient/{patient}&_count=20"
        elif kind == 1:
            q = f"DiagnosticReport?subject=Patient/{patient}&_total=accurate"
        elif kind == 2:
            q = f"Observation?code=http://loinc.org|{self.rng.choice(self.codes)}&_count=10"
        elif kind == 3:
            q = "ServiceRequest?status=active&_count=10&_sort=-_lastUpdated"
        else:
            q = f"Specimen?patient=Patient/{patient}"
        return Request("GET", f"/fhir/R4/{q}", kind="search")

    def _observation(self, patient: str, oid: str | None = None) -> bytes:
        code = self.rng.choice(self.codes)
        body: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2026-11-20T09:30:00+08:00",
            "valueQuantity": {
                "value": round(self.rng.uniform(3, 150), 1),
                "unit": "g/L",
                "system": "http://unitsofmeasure.org",
                "code": "g/L",
            },
        }
        if oid is not None:
            body["id"] = oid
        return json.dumps(body).encode()


def run(
    *,
    url: str | None = None,
    db: str | None = None,
    connections: int = 1000,
    rate: float = 1300.0,
    seconds: float = 20.0,
    bundles: int = 60,
    bundle_concurrency: int = 4,
    saturate: bool = True,
    peer: bool = True,
    token: str | None = None,
    progress: Progress = lambda _s: None,
) -> dict[str, Any]:
    """Run the phases (module doc) and return the report."""
    out: dict[str, Any] = {
        "benchmark": "api",
        "db": "postgresql" if db and db.startswith("postgresql") else "sqlite",
        "connections": connections,
        "open_loop_rate": rate,
        "seconds_per_phase": seconds,
        "cpus": os.cpu_count(),
    }
    with _server(url, db, token) as (base, pid, auth):
        out["server"] = base
        progress("bundle ingest")
        ingest, pools, codes = asyncio.run(_ingest(base, bundles, bundle_concurrency, auth))
        out["bundle_ingest"] = ingest
        work = Workload(pools, codes)
        before = _tree_size(base)
        cpu0 = _cpu_seconds(pid)
        progress(f"open loop: {rate:,.0f} req/s over {connections:,} connections")
        mixed = _load(base, work, connections, seconds, rate, auth)
        out["mixed_open_loop"] = mixed.summary()
        if pid is not None:
            out["mixed_open_loop"]["server_cpu_ms_per_request"] = round(
                1000 * (_cpu_seconds(pid) - cpu0) / max(1, len(mixed.latencies)), 3
            )
        if saturate:
            progress(f"closed loop over {connections:,} connections")
            out["mixed_closed_loop"] = _load(base, work, connections, seconds, None, auth).summary()
        grew = _tree_size(base) - before
        out["anchoring"] = {
            "acknowledged_writes": len(work.acked),
            "distinct_ledger_indexes": len(set(work.acked)),
            "writes_without_ledger_index": work.unanchored,
            # The ledger also grows by the audit trail's batches (one entry per second).
            "ledger_growth": grew,
            "every_write_anchored": work.unanchored == 0
            and len(set(work.acked)) == len(work.acked) <= grew,
        }
        if pid is not None:
            out["server_peak_rss_mib"] = _peak_rss_mib(pid)
    if peer:
        progress("peer: FastAPI + dict, same URLs")
        out["peer"] = _run_peer(connections, seconds, rate, bundles, bundle_concurrency, saturate)
        ours, theirs = out.get("mixed_closed_loop"), out["peer"].get("mixed_closed_loop")
        if ours and theirs and theirs["requests_per_s"]:
            out["ratio_saturation_vs_peer"] = round(
                ours["requests_per_s"] / theirs["requests_per_s"], 3
            )
    return out


def _load(
    base: str,
    work: Workload,
    conns: int,
    seconds: float,
    rate: float | None,
    auth: dict[str, str] | None = None,
) -> LoadResult:
    return asyncio.run(
        run_load(
            base,
            work.next,
            connections=conns,
            seconds=seconds,
            rate=rate,
            on_done=work.done,
            headers=auth,
        )
    )


async def _ingest(
    base: str, bundles: int, concurrency: int, auth: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    docs = [as_transaction(clinical_set(seed)) for seed in range(bundles)]
    bodies = [json.dumps(d).encode() for d in docs]
    pools: dict[str, list[str]] = {t: [] for t in READ_TYPES}
    codes = sorted(
        {
            c["code"]
            for d in docs
            for e in d["entry"]
            if e["resource"]["resourceType"] == "Observation"
            for c in e["resource"]["code"]["coding"]
            if c["system"] == "http://loinc.org"
        }
    )
    sem = asyncio.Semaphore(concurrency)
    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, timeout=timeout, headers=auth) as session:

        async def post(body: bytes) -> None:
            async with sem, session.post("/fhir/R4", data=body, headers=FHIR) as resp:
                answer = await resp.read()
                if resp.status != 200:
                    failures.append(f"{resp.status}: {answer[:300]!r}")
                    return
                for entry in json.loads(answer)["entry"]:
                    rtype, rid = entry["response"]["location"].split("/")[:2]
                    if rtype in pools:
                        pools[rtype].append(rid)

        start = time.perf_counter()
        await asyncio.gather(*(post(b) for b in bodies))
        took = time.perf_counter() - start
    resources = sum(len(d["entry"]) for d in docs)
    if failures:
        raise EnvironmentFailure(f"bundle ingest failed: {failures[0]}")
    report = {
        "bundles": bundles,
        "resources": resources,
        "resources_per_bundle": round(resources / bundles, 1),
        "concurrency": concurrency,
        "seconds": round(took, 2),
        "resources_per_s": round(resources / took, 1),
    }
    return report, pools, codes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(
    url: str | None, db: str | None, token: str | None
) -> Iterator[tuple[str, int | None, dict[str, str]]]:
    """A fresh ``medledger serve`` with a benchmark service account (or ``url`` and ``token``);
    yields the base URL, the server's pid and the Authorization header."""
    if url is not None:
        if not token:
            raise InputError(
                "benchmarking a running server needs an access token",
                field="token",
                expected="--token (or MEDLEDGER_TOKEN): a token of an integration client",
            )
        yield url.rstrip("/"), None, {"Authorization": f"Bearer {token}"}
        return
    with tempfile.TemporaryDirectory(prefix="medledger-bench-api-") as tmp:
        port = _free_port()
        secret = _provision(Path(tmp) / "d", db)
        cmd = [sys.executable, "-m", "medledger.cli.main", "serve", "--data", f"{tmp}/d"]
        cmd += ["--port", str(port), "--max-body", str(8 * 1024 * 1024)]
        base = f"http://127.0.0.1:{port}"
        with _process(cmd, base, "/readyz") as pid:
            yield base, pid, {"Authorization": f"Bearer {_client_token(base, secret)}"}


def _provision(data: Path, db: str | None) -> str:
    """Create the node and a group-wide integration client (as `medledger admin` would)."""
    from medledger.access.admin import AccessAdmin
    from medledger.access.model import InstitutionKind, Role
    from medledger.ledger.node import LedgerNode

    with LedgerNode.init(data, db=db, node="hosp-central") as node:
        admin = AccessAdmin.open(node.store.engine, node.data_dir, node.suite)
        admin.add_institution("hosp-central", "bench", InstitutionKind.CENTRAL, actor=None)
        password = "Bench-" + os.urandom(12).hex()
        admin.add_user("bench-admin", "hosp-central", "bench", password,
                       [(Role.GROUP_ADMIN, "*")], None)  # fmt: skip
        secret, _ = admin.add_client(
            "bench", "hosp-central", "benchmark", [(Role.INTEGRATION, "hosp-central")],
            jwk=None, with_secret=True, actor="bench-admin",
        )  # fmt: skip
    assert secret is not None
    return secret


def _client_token(base: str, secret: str) -> str:
    import base64
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (loopback only)
        base + "/auth/token",
        data=b"grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
        token: str = json.loads(resp.read())["access_token"]
    return token


def _run_peer(
    conns: int, seconds: float, rate: float, bundles: int, conc: int, saturate: bool
) -> dict[str, Any]:
    port = _free_port()
    cmd = [sys.executable, "-m", "medledger.benchmarks.api_peer", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with _process(cmd, base, "/healthz") as pid:
        ingest, pools, codes = asyncio.run(_ingest(base, bundles, conc))
        work = Workload(pools, codes)
        out: dict[str, Any] = {"what": "FastAPI+uvicorn, dict store, same URLs", "ingest": ingest}
        out["mixed_open_loop"] = _load(base, work, conns, seconds, rate).summary()
        if saturate:
            out["mixed_closed_loop"] = _load(base, work, conns, seconds, None).summary()
        out["server_peak_rss_mib"] = _peak_rss_mib(pid)
    return out


@contextmanager
def _process(cmd: list[str], base: str, ready: str) -> Iterator[int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise EnvironmentFailure(f"server exited ({proc.returncode}): {err[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), 1):
                    pass
                if _get_json(base + ready) is not None:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EnvironmentFailure(f"server at {base} did not become ready")
            time.sleep(0.1)
        yield proc.pid
    finally:
        stop_process(proc, 20)


def _get_json(url: str) -> Any:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback only)
            return json.loads(resp.read())
    except OSError:
        return None


def _tree_size(base: str) -> int:
    ready = _get_json(base + "/readyz")
    if ready is None:
        raise EnvironmentFailure(f"{base}/readyz did not answer")
    return int(ready["tree_size"])


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return 0.0
