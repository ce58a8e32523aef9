"""`medledger admin` end to end: bootstrap, scoped grants, one-time client secrets, locking."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from medledger.access.admin import AccessAdmin
from medledger.access.audit_trail import AuditTrail
from medledger.access.model import PrincipalKind
from medledger.access.passwords import FAST, PasswordHasher
from medledger.cli.main import app
from medledger.errors import AuthenticationFailed
from medledger.ledger.node import LedgerNode

Run = Callable[..., Result]
ROOT_PW = "root-password-0001\n"
PW = "a-good-password-42\n"


@pytest.fixture
def run() -> Run:
    runner = CliRunner()

    def invoke(*args: str | Path, input: str | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash with the cheap test parameters (production ones are checked in one test below)."""
    monkeypatch.setattr("medledger.access.credentials.PasswordHasher", lambda: PasswordHasher(FAST))


@pytest.fixture
def data(tmp_path: Path, run: Run, fast_hashing: None) -> Path:
    """A ledger with hosp-central, the bootstrapped group admin root, hosp-east and admin ea."""
    d = tmp_path / "data"
    assert run("init", "-d", d, "--node", "central", "--block-max-wait-ms", "0").exit_code == 0
    steps = [
        (("institution", "add", "hosp-central", "--name", "市中心医院", "--kind", "central"), None),
        (("user", "add", "root", "--institution", "hosp-central", "--name", "Root",
          "--role", "group_admin", "--password-stdin"), ROOT_PW),
        (("institution", "add", "hosp-east", "--name", "东院", "--as", "root"), None),
        (("user", "add", "ea", "--institution", "hosp-east", "--name", "East admin",
          "--role", "institution_admin", "--password-stdin", "--as", "root"), PW),
    ]  # fmt: skip
    for args, stdin in steps:
        result = run("admin", *args, "-d", d, input=stdin)
        assert result.exit_code == 0, result.output
        assert "ledger entry" in result.output
    return d


def test_cli_stores_production_argon2id_hashes_only(tmp_path: Path, run: Run) -> None:
    """Without test overrides the CLI hashes with m=64 MiB, t=3, p=2 and keeps no clear text."""
    d = tmp_path / "data"
    assert run("init", "-d", d, "--block-max-wait-ms", "0").exit_code == 0
    assert run("admin", "institution", "add", "hosp-a", "--name", "A", "-d", d).exit_code == 0
    result = run("admin", "user", "add", "root", "--institution", "hosp-a", "--name", "R",
                 "--role", "group_admin", "--password-stdin", "-d", d, input=ROOT_PW)  # fmt: skip
    assert result.exit_code == 0, result.output
    with LedgerNode.open(d) as node, node.store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT secret_hash FROM access_credentials").scalar_one()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    for path in d.rglob("*"):
        if path.is_file():
            assert ROOT_PW.strip().encode() not in path.read_bytes(), path


def _refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_bootstrap_then_everything_needs_as(data: Path, run: Run) -> None:
    """After the first group admin, a change without --as is refused with exit 2."""
    result = run("admin", "institution", "add", "hosp-west", "--name", "西院", "-d", data)
    _refused(result, "--as ADMIN", "field: as")
    result = run(
        "admin", "user", "add", "r2", "--institution", "hosp-central", "--name", "R2",
        "--role", "group_admin", "--password-stdin", "-d", data, input=PW,
    )  # fmt: skip
    _refused(result, "--as ADMIN")


def test_grant_beyond_own_scope_is_refused(data: Path, run: Run) -> None:
    """ea (institution admin of hosp-east) cannot grant at hosp-central; root can."""
    result = run(
        "admin", "user", "add", "dr.li", "--institution", "hosp-east", "--name", "李医生",
        "--role", "clinician", "--as", "ea", "-d", data, input=PW + PW,
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # password read from the prompt, twice
    grant = ("admin", "role", "grant", "dr.li", "clinician", "--scope", "hosp-central")
    result = run(*grant, "--as", "ea", "-d", data)
    _refused(result, "access.denied", "admins may only assign what they hold", "field: ")
    assert run(*grant, "--as", "root", "-d", data).exit_code == 0
    listed = json.loads(run("admin", "user", "list", "--json", "-d", data).stdout)
    li = next(u for u in listed if u["id"] == "dr.li")
    assert {(g["role"], g["scope"], g["by"]) for g in li["grants"]} == {
        ("clinician", "hosp-east", "ea"),
        ("clinician", "hosp-central", "root"),
    }
    result = run("admin", "role", "revoke", "dr.li", "clinician", "--as", "ea", "-d", data)
    assert result.exit_code == 0, result.output
    result = run("admin", "role", "grant", "dr.li", "auditor", "--as", "root", "-d", data)
    _refused(result, "separation of duties")


def test_client_secret_is_printed_once_and_never_stored(data: Path, run: Run) -> None:
    """The generated secret appears in the output once and in no file of the data directory."""
    result = run("admin", "client", "add", "lis-01", "--institution", "hosp-east", "--as", "ea",
                 "-d", data)  # fmt: skip
    assert result.exit_code == 0, result.output
    secrets = re.findall(r"client secret \(shown only now; store it safely\): (\S+)", result.stdout)
    assert len(secrets) == 1
    secret = secrets[0]
    listing = run("admin", "client", "list", "--json", "-d", data).stdout
    assert secret not in listing
    assert json.loads(listing)[0]["has_secret"] is True
    for path in data.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    again = run("admin", "client", "rotate-secret", "lis-01", "--as", "ea", "-d", data)
    assert again.exit_code == 0, again.output
    assert secret not in again.stdout
    assert "client secret" in again.stdout


def test_client_with_jwk_and_no_secret(data: Path, run: Run, tmp_path: Path) -> None:
    """--jwk registers a public key (no secret by default); a private JWK is refused."""
    from joserfc.jwk import OKPKey

    key = OKPKey.generate_key("Ed25519")
    pub, priv = tmp_path / "pub.jwk", tmp_path / "priv.jwk"
    pub.write_text(json.dumps(key.as_dict(private=False)))
    priv.write_text(json.dumps(key.as_dict(private=True)))
    base = ("admin", "client", "add", "pacs-01", "--institution", "hosp-east", "--as", "ea")
    _refused(run(*base, "--jwk", priv, "-d", data), "private key material", "field: jwk")
    result = run(*base, "--jwk", pub, "-d", data)
    assert result.exit_code == 0, result.output
    assert "client secret" not in result.stdout
    listed = json.loads(run("admin", "client", "list", "--json", "-d", data).stdout)
    assert listed[0]["jwk_thumbprint"] == key.thumbprint()
    assert listed[0]["has_secret"] is False


def test_institution_list_shows_public_keys_only(data: Path, run: Run) -> None:
    """Listing shows each key id and public key, never the private key."""
    listed = json.loads(run("admin", "institution", "list", "--json", "-d", data).stdout)
    assert [i["id"] for i in listed] == ["hosp-central", "hosp-east"]
    for inst in listed:
        key_file = json.loads((data / "institutions" / f"{inst['id']}.key").read_text())
        assert inst["key_id"] == key_file["key_id"]
        assert key_file["private_key"] not in json.dumps(listed)
    table = run("admin", "institution", "list", "-d", data, input=None).stdout
    assert f"public_key   {listed[0]['public_key']}" in table


def test_changes_are_anchored_on_the_ledger(data: Path) -> None:
    """Each change is one access.grant entry (ids and roles, no names or passwords) and one
    audit event, anchored in its audit.batch like the server's."""
    with LedgerNode.open(data) as node, node.reader() as r:
        everything = [json.loads(r.get_entry(i)) for i in range(r.entry_count())]
        trail = AuditTrail(node.store.engine, node, node="central")
        try:
            events, _, _ = trail.search([("_count", "50")])
        finally:
            trail.close()
    entries = [e for e in everything if e["type"] != "audit.batch"]
    assert [e["type"] for e in everything].count("audit.batch") == 4
    assert sorted(e["outcomeDesc"].split()[0] for e in events) == [
        "access.institution.add",
        "access.institution.add",
        "access.user.add",
        "access.user.add",
    ]
    assert "root-password" not in json.dumps(events)
    assert [e["meta"]["event"] for e in entries] == [
        "access.institution.add",
        "access.user.add",
        "access.institution.add",
        "access.user.add",
    ]
    assert all(e["type"] == "access.grant" for e in entries)
    text = json.dumps(entries, ensure_ascii=False)
    assert "root-password" not in text
    assert "东院" not in text


def test_admin_refuses_while_another_process_writes(data: Path, run: Run) -> None:
    """With the writer lock held (a running server), changes exit 2; listings still work."""
    with LedgerNode.open(data) as server:
        server.acquire_writer()
        result = run("admin", "user", "disable", "ea", "--as", "root", "-d", data)
        _refused(result, "another process is writing")
        assert run("admin", "user", "list", "-d", data).exit_code == 0


@pytest.mark.parametrize(
    ("args", "stdin", "needles"),
    [
        (("user", "add", "x.y", "--institution", "hosp-east", "--name", "X", "--role", "boss"),
         PW, ("unknown role", "clinician")),
        (("user", "add", "x.y", "--institution", "hosp-east", "--name", "X"),
         "short\n", ("password refused", "field: password")),
        (("user", "add", "x.y", "--institution", "hosp-nowhere", "--name", "X"),
         PW, ("no institution", "field: institution")),
        (("institution", "add", "Bad_Id", "--name", "X"), None, ("field: institution",)),
        (("user", "disable", "ghost"), None, ("no user", "field: user")),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_field(
    data: Path, run: Run, args: tuple[str, ...], stdin: str | None, needles: tuple[str, ...]
) -> None:
    """Bad input exits 2 with a message naming the field and no traceback."""
    flags = ("--password-stdin",) if stdin is not None else ()
    result = run("admin", *args, *flags, "--as", "root", "-d", data, input=stdin)
    _refused(result, *needles)
    assert "short" not in result.output.replace("shorter", "")


def test_set_password_needs_an_admin_and_the_policy(data: Path, run: Run) -> None:
    """`admin user set-password` resets with --as and a policy-passing password; a weak one or
    a missing --as exits 2 and changes nothing."""
    args = ("admin", "user", "set-password", "ea", "--password-stdin", "-d", data)
    weak = run(*args, "--as", "root", input="short\n")
    assert weak.exit_code == 2, weak.output
    anonymous = run(*args, input="another-good-password-1\n")
    assert anonymous.exit_code == 2, anonymous.output
    done = run(*args, "--as", "root", input="another-good-password-1\n")
    assert done.exit_code == 0, done.output
    assert "password of ea reset; 0 sign-in(s) ended" in done.output
    with LedgerNode.open(data) as node:
        admin = AccessAdmin.open(node.store.engine, node.data_dir, node.suite)
        admin.credentials.authenticate(PrincipalKind.USER, "ea", "another-good-password-1")
        with pytest.raises(AuthenticationFailed):
            admin.credentials.authenticate(PrincipalKind.USER, "ea", PW)
