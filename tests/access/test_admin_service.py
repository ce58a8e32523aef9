"""AccessAdmin: bootstrap, "admins may only assign what they hold", guards, events."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from medledger.access.admin import AccessAdmin, ledger_entry
from medledger.access.lockout import Event
from medledger.access.model import InstitutionKind, PrincipalKind, Role
from medledger.errors import (
    AuthenticationFailed,
    InputError,
    NotFound,
    PermissionDenied,
    StateError,
)
from medledger.ledger.entry import validate_entry
from tests.access._admin_fixtures import PW, ROOT_PW, make_admin, migrated_engine, populate

USER = PrincipalKind.USER
CLIENT = PrincipalKind.CLIENT


@pytest.fixture
def engine(db_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(db_url, tmp_path) as eng:
        yield eng


@pytest.fixture
def admin(engine: Engine, tmp_path: Path) -> AccessAdmin:
    a = make_admin(engine, tmp_path)
    populate(a)
    return a


def test_bootstrap_creates_exactly_one_first_group_admin(engine: Engine, tmp_path: Path) -> None:
    """Without an actor, only institution add and a group_admin user add work, and only once."""
    a = make_admin(engine, tmp_path)
    assert a.bootstrapping()
    inst, event = a.add_institution("hosp-central", "总院", InstitutionKind.CENTRAL, None)
    assert event["by"] == "bootstrap"
    assert inst.key_id == event["key_id"]
    with pytest.raises(PermissionDenied, match="first user must be added with"):
        a.add_user("dr.li", "hosp-central", "Li", PW, [(Role.CLINICIAN, "own")], None)
    event = a.add_user("root", "hosp-central", "Root", ROOT_PW, [(Role.GROUP_ADMIN, "*")], None)
    assert event["by"] == "bootstrap"
    assert event["roles"] == ["group_admin@*"]
    assert not a.bootstrapping()
    with pytest.raises(PermissionDenied, match="--as"):
        a.add_user("r2", "hosp-central", "R2", PW, [(Role.GROUP_ADMIN, "*")], None)
    with pytest.raises(PermissionDenied, match="--as"):
        a.add_institution("hosp-east", "东院", InstitutionKind.MEMBER, None)


def test_institution_admin_stays_within_its_institution(admin: AccessAdmin) -> None:
    """ea administers hosp-east only, and cannot hand out group-wide or foreign scopes."""
    admin.add_user("dr.li", "hosp-east", "Li", PW, [(Role.CLINICIAN, "own")], "ea")
    with pytest.raises(PermissionDenied) as info:
        admin.grant(USER, "dr.li", Role.CLINICIAN, "hosp-central", "ea")
    assert info.value.details["value"] == "delete:*@hosp-central"  # the first, sorted
    with pytest.raises(PermissionDenied):
        admin.grant(USER, "dr.li", Role.CLINICIAN, "*", "ea")
    with pytest.raises(PermissionDenied):
        admin.grant(USER, "dr.li", Role.GROUP_ADMIN, "*", "ea")
    with pytest.raises(PermissionDenied, match="admin:\\*@hosp-central"):
        admin.add_user("dr.wu", "hosp-central", "Wu", PW, [], "ea")
    with pytest.raises(PermissionDenied):
        admin.add_institution("hosp-west", "西院", InstitutionKind.MEMBER, "ea")
    admin.grant(USER, "dr.li", Role.CLINICIAN, "hosp-central", "root")  # root holds admin:*@*
    user = admin.directory.get_user("dr.li")
    assert user is not None
    assert {(g.role, g.scope) for g in user.grants} == {
        (Role.CLINICIAN, "hosp-east"),
        (Role.CLINICIAN, "hosp-central"),
    }


def test_no_self_grants_and_no_non_admin_actors(admin: AccessAdmin) -> None:
    """Admins cannot grant to themselves; clinicians, unknown and disabled users cannot act."""
    with pytest.raises(PermissionDenied, match="themselves"):
        admin.grant(USER, "ea", Role.CLINICIAN, "own", "ea")
    admin.add_user("dr.li", "hosp-east", "Li", PW, [(Role.CLINICIAN, "own")], "ea")
    admin.add_user("dr.wu", "hosp-east", "Wu", PW, [], "ea")
    with pytest.raises(PermissionDenied, match="admin:\\*@hosp-east"):
        admin.grant(USER, "dr.wu", Role.CLINICIAN, "own", "dr.li")
    with pytest.raises(PermissionDenied, match="not an enabled user"):
        admin.grant(USER, "dr.wu", Role.CLINICIAN, "own", "ghost")
    admin.set_user_disabled("ea", True, "root")
    with pytest.raises(PermissionDenied, match="not an enabled user"):
        admin.grant(USER, "dr.wu", Role.CLINICIAN, "own", "ea")


def test_the_last_group_admin_is_kept(admin: AccessAdmin) -> None:
    """The last enabled group admin can be neither disabled nor revoked; nor disable itself."""
    with pytest.raises(StateError, match="own account"):
        admin.set_user_disabled("root", True, "root")
    with pytest.raises(StateError, match="last enabled group admin"):
        admin.revoke(USER, "root", Role.GROUP_ADMIN, "*", "root")
    admin.add_user("root2", "hosp-central", "R2", PW, [(Role.GROUP_ADMIN, "*")], "root")
    admin.revoke(USER, "root", Role.GROUP_ADMIN, "*", "root2")
    with pytest.raises(StateError, match="last enabled group admin"):
        admin.revoke(USER, "root2", Role.GROUP_ADMIN, "*", "root2")
    assert not admin.bootstrapping()


def test_weaker_admins_cannot_manage_stronger_accounts(admin: AccessAdmin) -> None:
    """An institution admin cannot disable, unlock or re-key an account holding more."""
    admin.add_user("ca", "hosp-central", "C", PW, [(Role.INSTITUTION_ADMIN, "own")], "root")
    with pytest.raises(PermissionDenied):
        admin.set_user_disabled("root", True, "ca")
    with pytest.raises(PermissionDenied):
        admin.unlock(USER, "root", "ca")
    with pytest.raises(PermissionDenied):
        admin.set_user_disabled("ea", True, "ca")  # another institution
    admin.add_user("dr.wu", "hosp-central", "Wu", PW, [(Role.CLINICIAN, "own")], "ca")
    admin.grant(USER, "dr.wu", Role.CLINICIAN, "hosp-east", "root")
    with pytest.raises(PermissionDenied, match="hosp-east"):  # dr.wu now reaches beyond ca
        admin.set_user_disabled("dr.wu", True, "ca")
    admin.set_user_disabled("dr.wu", True, "root")
    admin.set_user_disabled("dr.wu", False, "root")


def test_revoke_needs_the_same_coverage_and_an_active_grant(admin: AccessAdmin) -> None:
    """Revoking is refused beyond one's scope; revoking a grant not held is NotFound."""
    admin.add_user("dr.li", "hosp-east", "Li", PW, [(Role.CLINICIAN, "own")], "ea")
    admin.grant(USER, "dr.li", Role.CLINICIAN, "*", "root")
    with pytest.raises(PermissionDenied):
        admin.revoke(USER, "dr.li", Role.CLINICIAN, "*", "ea")
    admin.revoke(USER, "dr.li", Role.CLINICIAN, "own", "ea")
    with pytest.raises(NotFound) as info:
        admin.revoke(USER, "dr.li", Role.CLINICIAN, "own", "ea")
    assert info.value.field == "role"


def test_separation_of_duties_on_grant(admin: AccessAdmin) -> None:
    """A clinician cannot also be made an auditor (and vice versa)."""
    admin.add_user("aud", "hosp-east", "Auditor", PW, [(Role.AUDITOR, "own")], "ea")
    with pytest.raises(StateError, match="separation of duties"):
        admin.grant(USER, "aud", Role.CLINICIAN, "own", "ea")
    with pytest.raises(StateError, match="separation of duties"):
        admin.add_user(
            "x.y", "hosp-east", "X", PW, [(Role.AUDITOR, "own"), (Role.CLINICIAN, "own")], "ea"
        )


def test_clients_secrets_jwks_and_roles(admin: AccessAdmin, engine: Engine) -> None:
    """A client gets a one-time secret (stored hashed), never an admin role."""
    roles = [(Role.INTEGRATION, "own")]
    secret, event = admin.add_client(
        "lis-01", "hosp-east", "LIS", roles, jwk=None, with_secret=True, actor="ea"
    )
    assert secret is not None
    assert len(secret) >= 43
    assert secret not in json.dumps(event)
    admin.credentials.authenticate(CLIENT, "lis-01", secret)
    new, _ = admin.rotate_client_secret("lis-01", "ea")
    with pytest.raises(AuthenticationFailed):
        admin.credentials.authenticate(CLIENT, "lis-01", secret)
    admin.credentials.authenticate(CLIENT, "lis-01", new)
    with pytest.raises(InputError, match="may not hold institution_admin"):
        admin.grant(CLIENT, "lis-01", Role.INSTITUTION_ADMIN, "own", "root")
    with pytest.raises(InputError, match="secret or a public key"):
        admin.add_client("pacs", "hosp-east", "P", [], jwk=None, with_secret=False, actor="ea")
    with pytest.raises(StateError, match="already exists"):
        admin.add_client("lis-01", "hosp-east", "L", [], jwk=None, with_secret=True, actor="ea")
    admin.set_client_disabled("lis-01", True, "ea")
    with pytest.raises(AuthenticationFailed):
        admin.credentials.authenticate(CLIENT, "lis-01", new)


def test_unlock_emits_the_credential_event(engine: Engine, tmp_path: Path) -> None:
    """An admin unlock clears a lockout; the sink sees auth.lockout then auth.unlock."""
    events: list[Event] = []
    a = make_admin(engine, tmp_path, events)
    populate(a)
    a.add_user("dr.li", "hosp-east", "Li", PW, [], "ea")
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            a.credentials.authenticate(USER, "dr.li", "wrong-password")
    a.unlock(USER, "dr.li", "ea")
    a.credentials.authenticate(USER, "dr.li", PW)
    assert [e["event"] for e in events] == ["auth.lockout", "auth.unlock"]
    assert events[1]["by"] == "ea"
    assert PW not in json.dumps(events)
    assert "wrong-password" not in json.dumps(events)


def test_admin_events_are_valid_ledger_entries_without_secrets(admin: AccessAdmin) -> None:
    """Every admin event becomes a valid access.grant entry holding ids, never a password."""
    event = admin.add_user("dr.li", "hosp-east", "李医生", PW, [(Role.CLINICIAN, "own")], "ea")
    entry = ledger_entry(event)
    validate_entry(entry)
    assert entry["type"] == "access.grant"
    assert entry["inst"] == "hosp-east"
    assert entry["ref"] == "user/dr.li"
    assert entry["meta"]["by"] == "ea"
    assert PW not in json.dumps(entry)
    assert "李医生" not in json.dumps(entry, ensure_ascii=False)


def test_add_institution_writes_a_private_key(admin: AccessAdmin, tmp_path: Path) -> None:
    """Each institution has a 0600 key file whose key id the directory records."""
    inst = admin.directory.institution("hosp-east")
    path = tmp_path / "institutions" / "hosp-east.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["key_id"] == inst.key_id
    assert "private" not in json.dumps(inst.to_json())
    with pytest.raises(StateError, match="already exists"):
        admin.add_institution("hosp-east", "东院", InstitutionKind.MEMBER, "root")
