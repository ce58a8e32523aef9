"""The admin API over real HTTP: acting as the token's user, anchored, checked like the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwk

from medledger.access.model import PrincipalKind
from medledger.api.admin import caller_of
from medledger.errors import AuthenticationFailed
from tests.access._token_fixtures import PW, ROOT_PW, World, world
from tests.api._token_app import build_app, served

ADMIN = "/api/v1/admin"
NEW_PW = "another-good-password-7"


@dataclass
class Live:
    w: World
    http: httpx.Client

    def token(self, user: str = "root", password: str = ROOT_PW) -> dict[str, str]:
        """Sign ``user`` in over HTTP; return the Authorization header."""
        form = {"grant_type": "password", "username": user, "password": password}
        r = self.http.post("/auth/token", data=form)
        assert r.status_code == 200, r.text
        return {"authorization": f"Bearer {r.json()['access_token']}"}

    def client_token(self, client_id: str, secret: str) -> httpx.Response:
        return self.http.post(
            "/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )


@pytest.fixture
def lv(tmp_path: Path, db_url: str | None) -> Iterator[Live]:
    """A populated node behind a real uvicorn server, on both databases."""
    with (
        world(tmp_path, db_url) as w,
        served(build_app(w.service, w.node)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield Live(w, http)


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    """Assert the native error envelope with ``status``; return its body."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    assert set(body) >= {"code", "message"}
    return body


def entry(lv: Live, index: int) -> dict[str, Any]:
    with lv.w.node.reader() as r:
        return dict(json.loads(r.get_entry(index)))


def test_who_may_call(lv: Live) -> None:
    """No token 401; a clinician's or a service account's token 403; an admin's 200."""
    error(lv.http.get(f"{ADMIN}/institutions"), 401)
    error(lv.http.get(f"{ADMIN}/institutions", headers={"authorization": "Bearer x.y.z"}), 401)
    error(lv.http.get(f"{ADMIN}/institutions", headers=lv.token("dr.li", PW)), 403)
    lis = lv.client_token("lis-01", lv.w.lis_secret).json()["access_token"]
    r = lv.http.get(f"{ADMIN}/users", headers={"authorization": f"Bearer {lis}"})
    assert "service accounts" in error(r, 403)["message"]
    assert lv.http.get(f"{ADMIN}/institutions", headers=lv.token()).status_code == 200


def test_add_institution_is_anchored(lv: Live) -> None:
    """A group admin adds an institution; the change is an access.grant ledger entry."""
    root = lv.token()
    r = lv.http.post(f"{ADMIN}/institutions", json={"id": "hosp-c", "name": "丙院"}, headers=root)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["institution"]["id"] == "hosp-c"
    assert body["event"]["event"] == "access.institution.add"
    anchored = entry(lv, body["ledger_index"])
    assert (anchored["type"], anchored["ref"]) == ("access.grant", "institution/hosp-c")
    assert anchored["meta"]["by"] == "root"
    assert "丙院" not in json.dumps(anchored, ensure_ascii=False)
    eb = lv.token("eb", PW)  # an institution admin is not a group admin
    r = lv.http.post(f"{ADMIN}/institutions", json={"id": "hosp-d", "name": "D"}, headers=eb)
    error(r, 403)
    error(
        lv.http.post(f"{ADMIN}/institutions", json={"id": "hosp-c", "name": "C"}, headers=root), 409
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"institution": "hosp-b", "name": "X", "password": NEW_PW}, "id"),
        ({"id": "x.y", "institution": "hosp-b", "name": "X", "password": NEW_PW, "extra": 1},
         "extra"),
        ({"id": 5, "institution": "hosp-b", "name": "X", "password": NEW_PW}, "id"),
        ({"id": "x.y", "institution": "hosp-b", "name": "X", "password": NEW_PW,
          "roles": "clinician"}, "roles"),
        ({"id": "x.y", "institution": "hosp-b", "name": "X", "password": NEW_PW,
          "roles": ["boss"]}, "role"),
        ({"id": "x.y", "institution": "hosp-b", "name": "X", "password": "short"}, "password"),
        ({"id": "bad id", "institution": "hosp-b", "name": "X", "password": NEW_PW}, "user"),
    ],
)  # fmt: skip
def test_bad_user_bodies_name_the_field(lv: Live, body: dict[str, Any], field: str) -> None:
    """Each bad body is a 400 whose details name the field; a password is never echoed."""
    r = lv.http.post(f"{ADMIN}/users", json=body, headers=lv.token("eb", PW))
    err = error(r, 400)
    assert err["details"]["field"] == field, err
    assert NEW_PW not in r.text
    assert "short" not in json.dumps(err.get("details", {}))


def test_malformed_and_oversized_bodies(lv: Live) -> None:
    """Not JSON 400, not an object 400, wrong type 415, too large 413."""
    root = lv.token()
    url = f"{ADMIN}/users"
    error(
        lv.http.post(url, content=b"{", headers={**root, "content-type": "application/json"}), 400
    )
    error(lv.http.post(url, json=[1], headers=root), 400)
    error(lv.http.post(url, data={"id": "x"}, headers=root), 415)
    big = {"id": "x", "institution": "hosp-a", "name": "X", "password": "p" * 20_000}
    error(lv.http.post(url, json=big, headers=root), 413)


def test_user_lifecycle(lv: Live) -> None:
    """eb adds a clinician at hosp-b, disables (token refused at once), enables, unlocks."""
    eb = lv.token("eb", PW)
    body = {"id": "dr.zhao", "institution": "hosp-b", "name": "赵医生", "password": NEW_PW,
            "roles": ["clinician"]}  # fmt: skip
    r = lv.http.post(f"{ADMIN}/users", json=body, headers=eb)
    assert r.status_code == 201, r.text
    assert r.json()["event"]["roles"] == ["clinician@hosp-b"]
    error(lv.http.post(f"{ADMIN}/users", json=body, headers=eb), 409)
    zhao = lv.token("dr.zhao", NEW_PW)
    listed = lv.http.get(f"{ADMIN}/users", headers=eb).json()
    assert {u["id"] for u in listed} == {"eb", "dr.zhao"}  # only hosp-b's accounts
    error(lv.http.get(f"{ADMIN}/users", params={"institution": "hosp-a"}, headers=eb), 403)
    r = lv.http.post(f"{ADMIN}/users/dr.zhao/disable", headers=eb)
    assert r.status_code == 200, r.text
    assert entry(lv, r.json()["ledger_index"])["meta"]["event"] == "access.user.disable"
    error(lv.http.get(f"{ADMIN}/roles", headers=zhao), 401)  # its token, refused at once
    bad = {"grant_type": "password", "username": "dr.zhao", "password": NEW_PW}
    assert lv.http.post("/auth/token", data=bad).status_code == 400
    assert lv.http.post(f"{ADMIN}/users/dr.zhao/enable", headers=eb).status_code == 200
    wrong = {**bad, "password": "wrong-password-00"}
    for _ in range(5):
        lv.http.post("/auth/token", data=wrong)
    assert lv.http.post("/auth/token", data=bad).status_code == 429
    assert lv.http.post(f"{ADMIN}/users/dr.zhao/unlock", headers=eb).status_code == 200
    assert lv.http.post("/auth/token", data=bad).status_code == 200
    error(lv.http.post(f"{ADMIN}/users/ghost/disable", headers=eb), 404)
    error(lv.http.post(f"{ADMIN}/users/root/disable", headers=eb), 403)  # a stronger account


def test_clients(lv: Live) -> None:
    """A generated secret is shown once (no-store) and works; rotate and disable take effect."""
    root = lv.token()
    r = lv.http.post(
        f"{ADMIN}/clients", json={"id": "his-02", "institution": "hosp-a"}, headers=root
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    secret = r.json()["client_secret"]
    assert r.json()["client"]["has_secret"] is True
    assert lv.client_token("his-02", secret).status_code == 200
    listed = lv.http.get(f"{ADMIN}/clients", headers=root)
    assert secret not in listed.text
    r = lv.http.post(f"{ADMIN}/clients/his-02/rotate-secret", headers=root)
    new_secret = r.json()["client_secret"]
    assert lv.client_token("his-02", secret).status_code == 401
    assert lv.client_token("his-02", new_secret).status_code == 200
    key = jwk.generate_key("OKP", "Ed25519")
    keyed = {"id": "pacs-02", "institution": "hosp-a", "jwk": key.as_dict(private=False),
             "roles": ["integration@hosp-a"]}  # fmt: skip
    r = lv.http.post(f"{ADMIN}/clients", json=keyed, headers=root)
    assert r.status_code == 201, r.text
    assert r.json()["client_secret"] is None
    assert r.json()["client"]["jwk_thumbprint"] == key.thumbprint()
    private = {**keyed, "id": "pacs-03", "jwk": key.as_dict(private=True)}
    assert (
        error(lv.http.post(f"{ADMIN}/clients", json=private, headers=root), 400)["details"]["field"]
        == "jwk"
    )
    admin_role = {"id": "x-01", "institution": "hosp-a", "roles": ["group_admin"]}
    error(lv.http.post(f"{ADMIN}/clients", json=admin_role, headers=root), 400)
    token = lv.client_token("his-02", new_secret).json()["access_token"]
    assert lv.http.post(f"{ADMIN}/clients/his-02/disable", headers=root).status_code == 200
    r = lv.http.get(f"{ADMIN}/roles", headers={"authorization": f"Bearer {token}"})
    error(r, 401)
    assert lv.http.post(f"{ADMIN}/clients/his-02/enable", headers=root).status_code == 200


def test_roles_grant_only_what_you_hold(lv: Live) -> None:
    """eb grants at hosp-b but not at hosp-a; root can; revoke works; the table lists roles."""
    eb, root = lv.token("eb", PW), lv.token()
    grant = {"principal": "dr.li", "role": "clinician", "scope": "hosp-b"}
    error(lv.http.post(f"{ADMIN}/roles/grant", json=grant, headers=eb), 403)  # dr.li is hosp-a's
    r = lv.http.post(f"{ADMIN}/roles/grant", json=grant, headers=root)
    assert r.status_code == 200, r.text
    assert entry(lv, r.json()["ledger_index"])["meta"]["event"] == "access.role.grant"
    user = lv.w.service.directory.get_user("dr.li")
    assert user is not None
    assert {(g.role.value, g.scope) for g in user.grants} >= {("clinician", "hosp-b")}
    r = lv.http.post(f"{ADMIN}/roles/revoke", json=grant, headers=root)
    assert r.status_code == 200, r.text
    error(lv.http.post(f"{ADMIN}/roles/revoke", json=grant, headers=root), 404)
    client = {"principal": "lis-01", "kind": "client", "role": "auditor"}
    r = lv.http.post(f"{ADMIN}/roles/grant", json=client, headers=root)
    assert "separation" in error(r, 409)["message"]
    err = error(
        lv.http.post(f"{ADMIN}/roles/grant", json={**grant, "kind": "robot"}, headers=root), 400
    )
    assert err["details"]["field"] == "kind"
    roles = lv.http.get(f"{ADMIN}/roles", headers=eb).json()
    assert {r["role"] for r in roles} >= {"clinician", "auditor", "group_admin"}
    assert (
        "audit-read:AuditEvent@own"
        in next(r for r in roles if r["role"] == "auditor")["permissions"]
    )


def test_openapi_documents_the_admin_bodies(lv: Live) -> None:
    """Each change route documents its JSON body and its error answers."""
    spec = lv.http.get("/openapi.json").json()
    post = spec["paths"][f"{ADMIN}/users"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"id", "institution", "name", "password"}
    assert {"201", "400", "403", "409"} <= set(post["responses"])
    assert f"{ADMIN}/roles/grant" in spec["paths"]
    assert "disabled" not in json.dumps(spec["paths"][f"{ADMIN}/users/{{user_id}}/disable"])


def test_caller_of_needs_an_authenticated_caller() -> None:
    """caller_of refuses a request whose security layer set no caller."""

    class State:
        pass

    class Req:
        state = State()

    with pytest.raises(AuthenticationFailed):
        caller_of(Req())  # type: ignore[arg-type]
    assert PrincipalKind.USER.value == "user"
