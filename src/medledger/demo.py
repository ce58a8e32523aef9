"""``make run``: the referral hub demo, two institutions of a hospital group on one MedLedger hub.

Start the real HTTP API (FHIR R4 at /fhir/R4) over a fresh ledger in ``./medledger-demo/data``,
seed a seeded referral story over HTTP as transaction Bundles (``demo_story``, ``demo_seed``),
verify a certificate offline, print ready-to-paste ``curl`` commands, then serve until Ctrl-C
or SIGTERM. ``MEDLEDGER_DEMO_PORT`` picks the port (default 8080; a free one if it is taken);
``MEDLEDGER_DEMO_EXIT=1`` stops right after printing (CI, fresh-clone checks).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.panel import Panel

from medledger.api.app import create_app, open_security
from medledger.crypto.canonical import canonical_bytes
from medledger.crypto.trust import load_trust_bundle
from medledger.demo_accounts import client_token, create_accounts, user_token, write_header
from medledger.demo_gateway import open_gateway, send_referral
from medledger.demo_ledger import DEMO_DIR, fresh_dir
from medledger.demo_seed import FHIR, Seeded, seed
from medledger.demo_story import Story, build_story
from medledger.errors import VerificationFailed
from medledger.ledger.config import DB_ENV, TRUST_FILE
from medledger.ledger.node import WRITER_LOCK, LedgerNode
from medledger.records.service import RecordService
from medledger.verify.certificate import parse_certificate, verify_certificate

DATA = DEMO_DIR / "data"
HOST = "127.0.0.1"
PORT_ENV, EXIT_ENV = "MEDLEDGER_DEMO_PORT", "MEDLEDGER_DEMO_EXIT"
SEED, PATIENTS = 20261122, 12
ROLES = {
    "hosp-central": "总院 central, performs exams",
    "hosp-member-east": "成员医院 member, refers",
}
TYPES = (
    *("Organization", "Practitioner", "Patient", "Encounter", "Consent", "ServiceRequest"),
    *("Specimen", "Observation", "ImagingStudy", "DiagnosticReport", "DocumentReference"),
    *("Provenance", "CodeSystem", "ConceptMap"),
)

console = Console(highlight=False, soft_wrap=True)


class _Hub:
    """uvicorn serving the node's API from a background thread of this process."""

    def __init__(self, service: RecordService, sock: socket.socket) -> None:
        self.security = open_security(service, token_ttl=3600)
        self.interop, self.mllp_port = open_gateway(service, self.security.trail, HOST)
        config = uvicorn.Config(
            create_app(service, security=self.security, interop=self.interop),
            log_level="warning",
            access_log=False,
            lifespan="on",  # starts the MLLP listener and the push worker
        )
        self.server = uvicorn.Server(config)
        self.port = int(sock.getsockname()[1])
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="hub", daemon=True
        )

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.security.close()  # anchors the last audit events


def _port() -> int:
    raw = os.environ.get(PORT_ENV, "8080")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        sys.exit(f"{PORT_ENV}={raw!r} is not a port number from 1 to 65535")
    return int(raw)


def _listen(port: int) -> socket.socket:
    """Bind ``port``, or a free port if it is taken (the socket goes to uvicorn: no race)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        sock = socket.socket()
        sock.bind((HOST, 0))
        free = sock.getsockname()[1]
        console.print(f"[yellow]端口 {port} 已被占用 / port {port} is taken: using {free}[/]")
    return sock


def _running() -> bool:
    """Whether another demo still serves from ./medledger-demo (it holds the writer lock)."""
    lock = DATA / WRITER_LOCK
    if not lock.exists():
        return False
    with lock.open("rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
    return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    port = _port()
    if _running():
        sys.exit(f"another demo is serving from {DEMO_DIR}; stop it first (Ctrl-C)")
    fresh_dir(DEMO_DIR)
    # Ctrl-C and SIGTERM both shut down cleanly (even where a shell started us ignoring SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.pop(DB_ENV, None)  # the demo always uses the embedded SQLite file in DATA
    console.print(Panel.fit("MedLedger 医联体转诊演示  ·  referral hub demo", style="bold"))
    node = LedgerNode.init(DATA, suite="intl-v1", node="hosp-central")
    hub: _Hub | None = None
    try:
        node.acquire_writer()
        service = RecordService.open(node)
        node.warm_cache()
        console.print(f"1. 账本 ledger: chain {node.config.chain}, suite {node.suite.name}, {DATA}")
        hub = _Hub(service, _listen(port))
        url = hub.start()
        console.print(
            f"2. 服务 server: {url} (FHIR R4 at {FHIR}); HL7 v2 MLLP at {HOST}:{hub.mllp_port}"
        )
        story = build_story(SEED, PATIENTS)
        accounts = create_accounts(node, list(story.institutions))
        console.print(
            "3. 账号 accounts: group admin, dr.member, dr.central, auditor; systems his-member "
            "(HIS), lis-central (LIS/PACS); every change anchored (access.grant)"
        )
        with httpx.Client(base_url=url, timeout=60) as http:
            sys_tokens = {c: client_token(http, c, s) for c, s in accounts.secrets.items()}
            headers = {
                user: write_header(DEMO_DIR / f"{user}.header", user_token(http, user, pw))
                for user, pw in accounts.passwords.items()
            }
        with (
            httpx.Client(base_url=url, timeout=60, headers=_auth(sys_tokens["lis-central"])) as lis,
            httpx.Client(base_url=url, timeout=60, headers=_auth(sys_tokens["his-member"])) as his,
        ):
            client = lis
            t0 = time.perf_counter()
            seeded = seed(lis, his, story)
            console.print(
                f"4. 转诊与报告回传 referrals and results: {len(story.episodes)} patients, "
                f"{seeded.transactions} transaction Bundles over HTTP in "
                f"{time.perf_counter() - t0:.1f}s"
            )
            console.print(
                f'5. 报告更正 corrected {seeded.corrected} → v2 amended (If-Match W/"1"); '
                f"报告召回 recalled {seeded.recalled} → v2 entered-in-error"
            )
            acks = send_referral(his, HOST, hub.mllp_port)
            console.print(
                f"6. HL7 v2 over MLLP: ORM^O01 from 示例区中医院 → {acks[0]}, ORU^R01 "
                f"(GB18030) from 示例市第一人民医院 → {acks[1]}; code JC0101 translated to 300101, "
                "journalled, stored, anchored (interop.message) and audited before each ACK"
            )
            _self_check(client, seeded)
            _summary(client, story)
        _print_commands(url, story, seeded, headers, accounts.passwords)
        if os.environ.get(EXIT_ENV) == "1":
            console.print(f"{EXIT_ENV}=1: 退出 stopping now")
            return
        console.print(f"Serving on {url} until Ctrl-C  ·  服务运行中，按 Ctrl-C 停止")
        while hub.thread.is_alive():
            time.sleep(0.2)  # not join(): an interrupted join breaks the thread's state
        sys.exit("the HTTP server stopped unexpectedly")
    except KeyboardInterrupt:
        console.print("\n已停止 / stopped")
    finally:
        if hub is not None:
            hub.stop()
        node.close()


def _self_check(client: httpx.Client, seeded: Seeded) -> None:
    """Fetch the corrected report's certificate over the API and verify it offline."""
    ref = f"{FHIR}/{seeded.corrected}/_history/2"
    cert = parse_certificate(_get(client, f"{ref}/$certificate"))
    resource = _get(client, ref)
    trust = load_trust_bundle(DATA / TRUST_FILE)
    report = verify_certificate(cert, trust, payload=canonical_bytes(resource))
    console.print(f"7. 自检 self-check: certificate of {seeded.corrected}/_history/2, offline:")
    for line in report.passed:
        console.print(f"     [green]✓[/] {line}")
    altered = {**resource, "conclusion": resource["conclusion"] + "。"}
    try:
        verify_certificate(cert, trust, payload=canonical_bytes(altered))
    except VerificationFailed as exc:
        console.print(f"     [green]✓[/] a copy altered by one character fails: {exc.check}")
    else:
        raise RuntimeError("demo failed: an altered report verified")


def _summary(client: httpx.Client, story: Story) -> None:
    counts = [f"{t} {_get(client, f'{FHIR}/{t}?_total=accurate&_count=1')['total']}" for t in TYPES]
    ready = _get(client, "/readyz")
    lines = [f"{inst} {name} ({ROLES.get(inst, '')})" for inst, name, _ in story.institutions]
    lines += [" · ".join(counts[i : i + 4]) for i in range(0, len(counts), 4)]
    lines.append(f"ledger 账本: {ready['tree_size']} entries in {ready['height']} blocks")
    console.print(
        Panel.fit(
            "\n".join(lines),
            title="机构与数据（总院 LIS 可见）/ institutions and data, as lis-central sees them",
        )
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _print_commands(
    url: str, story: Story, seeded: Seeded, headers: dict[str, Path], passwords: dict[str, str]
) -> None:
    ep, lk = seeded.episode, seeded.linker
    order = lk.ref(ep.orders[ep.items.index("CT")])
    patient = lk.ref(ep.patient).split("/")[1]
    spec = next(
        w.resource
        for e in story.episodes
        for w in e.referral.writes
        if w.resource["resourceType"] == "Specimen"
    )["identifier"][0]
    report = f"{url}{FHIR}/{seeded.corrected}"
    member = f"-H @{headers['dr.member']}"
    central = f"-H @{headers['dr.central']}"
    auditor = f"-H @{headers['auditor']}"
    cert, payload = DEMO_DIR / "cert.json", DEMO_DIR / "report.json"
    verify = f"{_medledger()} verify {cert} --payload {payload} --trust {DATA / TRUST_FILE}"
    commands = [
        (
            "成员医院医生看自己的转诊申请单 the member's doctor reads her referral (CT)",
            f"curl -s {member} '{url}{FHIR}/{order}'",
        ),
        (
            "成员医院医生看总院回传的报告 ... and the reports the central hospital returned",
            f"curl -s {member} '{url}{FHIR}/DiagnosticReport?patient={patient}&_total=accurate'",
        ),
        (
            "更正的报告，两个版本 the corrected report's history",
            f"curl -s {central} '{report}/_history'",
        ),
        (
            "总院按送检条码查标本 the central lab finds a specimen by its barcode",
            f"curl -s {central} '{url}{FHIR}/Specimen?identifier={spec['system']}|{spec['value']}'",
        ),
        (
            "取证书并离线验证 fetch the certificate and verify it offline",
            f"curl -s {central} '{report}/_history/2/$certificate' > {cert} && "
            f"curl -s {central} '{report}/_history/2' > {payload} && {verify}",
        ),
        (
            "在线验证，无需令牌 verify over HTTP, no token needed (after the line above)",
            f'printf \'{{"certificate": %s, "payload": %s}}\' "$(cat {cert})" '
            f"\"$(cat {payload})\" | curl -s -X POST '{url}/api/v1/verify' "
            "-H 'Content-Type: application/json' --data-binary @-",
        ),
        (
            "审计员查看审计记录（不含临床内容）the auditor reads the audit trail, no clinical data",
            f"curl -s {auditor} '{url}{FHIR}/AuditEvent?_count=3'",
        ),
        (
            "集团管理员看网关对账 the group admin reads the gateway's reconciliation",
            f"curl -s -H @{headers['admin']} '{url}/api/v1/interop/reconciliation'",
        ),
        (
            "没有令牌：401 without a token: 401",
            f"curl -s -o /dev/null -w '%{{http_code}}\\n' '{url}{FHIR}/Patient'",
        ),
    ]
    console.print(Panel.fit("账号 / accounts (演示用 demo only)", style="cyan"))
    for user, pw in passwords.items():
        print(f"  {user:<11} {pw}")
    print(
        f"  令牌一小时有效 tokens last 1 h; new one: curl -s -X POST {url}/auth/token "
        "-d grant_type=password -d username=dr.member -d password=<above>"
    )
    console.print(Panel.fit("地址 / URLs", style="cyan"))
    print(f"  API      {url}\n  文档 docs {url}/docs\n  FHIR     {url}{FHIR}/metadata")
    console.print(Panel.fit("试一试 / try it (bash, from this directory)", style="cyan"))
    for n, (title, command) in enumerate(commands, 1):
        print(f"# {n}. {title}\n{command}")
    sys.stdout.flush()


def _get(client: httpx.Client, path: str) -> dict[str, Any]:
    r = client.get(path)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def _medledger() -> str:
    """The CLI next to this interpreter, as a path that works from the current directory."""
    exe = Path(sys.executable).parent / "medledger"
    if not exe.exists():
        return f"{shlex.quote(sys.executable)} -m medledger.cli.main"
    rel = os.path.relpath(exe)
    return shlex.quote(str(exe) if rel.startswith("..") else rel)


if __name__ == "__main__":
    main()
