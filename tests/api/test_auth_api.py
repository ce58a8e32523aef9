"""The OAuth endpoints over HTTP: /auth/token, /auth/revoke and the .well-known documents."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from joserfc import jwk, jws

from medledger.access.jose_sm2 import ClientAssertionRegistry
from medledger.api.auth import oauth_error
from medledger.errors import StorageError
from tests.access._token_fixtures import PW, World, world
from tests.api._token_app import build_app, served

FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Live:
    """A world served over real HTTP on a loopback port."""

    w: World
    http: httpx.Client
    url: str

    @property
    def token_url(self) -> str:
        return self.url + "/auth/token"


@contextmanager
def live(tmp_path: Path, db_url: str | None, suite: str = "intl-v1") -> Iterator[Live]:
    with (
        world(tmp_path, db_url, suite) as w,
        served(build_app(w.service, w.node)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield Live(w, http, url)


@pytest.fixture(params=["intl-v1", "sm-v1"])
def lv(request: pytest.FixtureRequest, tmp_path: Path, db_url: str | None) -> Iterator[Live]:
    """Both node suites on both databases, served."""
    with live(tmp_path, db_url, request.param) as built:
        yield built


@pytest.fixture
def lv1(tmp_path: Path) -> Iterator[Live]:
    """intl-v1 on SQLite, served: for request-parsing tests that no backend changes."""
    with live(tmp_path, None) as built:
        yield built


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_oauth_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The RFC 6749 §5.2 shape: exactly error and error_description, never cached."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error
    assert all(" " <= c <= "~" and c not in '"\\' for c in body["error_description"])
    assert r.headers["cache-control"] == "no-store"
    return dict(body)


def test_password_grant_then_admin_call(lv: Live) -> None:
    """A person signs in with a form post and uses the token at once; both suites, both DBs."""
    http = lv.http
    r = http.post("/auth/token", data={"grant_type": "password", "username": "root",
                                       "password": "root-password-0001"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.headers["cache-control"], r.headers["pragma"]) == ("no-store", "no-cache")
    answer = r.json()
    assert set(answer) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    bearer = {"authorization": f"Bearer {answer['access_token']}"}
    listed = http.get("/api/v1/admin/institutions", headers=bearer)
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()] == ["hosp-a", "hosp-b"]
    refreshed = http.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]},
    )
    assert refreshed.status_code == 200
    replay = http.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]},
    )
    assert_oauth_error(replay, 400, "invalid_grant")


def test_client_authentication_methods(lv1: Live) -> None:
    """client_secret_basic, client_secret_post and private_key_jwt; failures are 401 + Basic."""
    http, w1 = lv1.http, lv1.w
    grant = {"grant_type": "client_credentials"}
    r = http.post("/auth/token", data=grant, headers=basic("lis-01", w1.lis_secret))
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    r = http.post(
        "/auth/token", data={**grant, "client_id": "lis-01", "client_secret": w1.lis_secret}
    )
    assert r.status_code == 200, r.text
    form = w1.assertion(aud=lv1.token_url)
    assert http.post("/auth/token", data=form).status_code == 200
    replayed = http.post("/auth/token", data=form)
    assert_oauth_error(replayed, 401, "invalid_client")
    assert replayed.headers["www-authenticate"].startswith("Basic realm=")
    wrong_aud = http.post("/auth/token", data=w1.assertion(jti="a-2"))  # aud: another URL
    assert_oauth_error(wrong_aud, 401, "invalid_client")
    for headers in (
        basic("lis-01", "wrong"),
        basic("ghost", "x"),
        {"authorization": "Basic !!!"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"authorization": "Bearer abc"},
    ):
        r = http.post("/auth/token", data=grant, headers=headers)
        body = assert_oauth_error(r, 401, "invalid_client")
        assert "lis-01" not in body["error_description"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b'{"grant_type": "password"}', {"content-type": "application/json"}, 415,
         "invalid_request"),
        (b"grant_type=password", {}, 415, "invalid_request"),
        (b"grant_type=password&grant_type=client_credentials", FORM, 400, "invalid_request"),
        (b"grant_type=%ff", FORM, 400, "invalid_request"),
        (b"\xff\xfe", FORM, 400, "invalid_request"),
        (b"&".join(b"p%d=1" % i for i in range(30)), FORM, 400, "invalid_request"),
        (b"x=" + b"a" * 20_000, FORM, 413, "invalid_request"),
        (b"grant_type=", FORM, 400, "invalid_request"),
        (b"grant_type=implicit", FORM, 400, "unsupported_grant_type"),
        (b"grant_type=password&username=dr.li&password=nope", FORM, 400, "invalid_grant"),
        (b"grant_type=password&username=tech&password=" + PW.encode() + b"&scope=user/*.rs",
         FORM, 400, "invalid_scope"),
    ],
)  # fmt: skip
def test_bad_token_requests(
    lv1: Live, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    """Malformed or refused token requests get OAuth JSON errors, never the native envelope."""
    r = lv1.http.post("/auth/token", content=body, headers=headers)
    assert_oauth_error(r, status, error)


def test_query_string_parameters_are_ignored(lv1: Live) -> None:
    """Credentials belong in the body: a token request's query string is not read."""
    r = lv1.http.post(
        "/auth/token?grant_type=password&username=dr.li&password=" + PW, data={"x": "1"}
    )
    assert_oauth_error(r, 400, "invalid_request")


def test_brute_force_locks_out_over_http(lv1: Live) -> None:
    """Five wrong passwords, then 429 with Retry-After; the right password is refused too."""
    http, w1 = lv1.http, lv1.w
    wrong = {"grant_type": "password", "username": "dr.li", "password": "wrong-password-00"}
    for _ in range(5):
        assert_oauth_error(http.post("/auth/token", data=wrong), 400, "invalid_grant")
    right = {**wrong, "password": PW}
    for form in (wrong, right):
        r = http.post("/auth/token", data=form)
        assert_oauth_error(r, 429, "invalid_grant")
        assert r.headers["retry-after"] == "30"
    w1.clock.now += 30
    assert http.post("/auth/token", data=right).status_code == 200


def test_revoke_endpoint(lv1: Live) -> None:
    """/auth/revoke answers 200 for anything; a revoked token fails the very next request."""
    http, w1 = lv1.http, lv1.w
    for garbage in ("", "A" * 43, "x.y.z"):
        r = http.post("/auth/revoke", data={"token": garbage} if garbage else {"x": "1"})
        if garbage:
            assert r.status_code == 200
            assert r.content == b""
        else:
            assert_oauth_error(r, 400, "invalid_request")
    answer = w1.password("root", "root-password-0001")
    bearer = {"authorization": f"Bearer {answer['access_token']}"}
    assert http.get("/api/v1/admin/roles", headers=bearer).status_code == 200
    assert http.post("/auth/revoke", data={"token": answer["access_token"]}).status_code == 200
    r = http.get("/api/v1/admin/roles", headers=bearer)
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "revoked"
    wrong = http.post(
        "/auth/revoke", data={"token": "x.y.z"}, headers=basic("lis-01", "not-the-secret")
    )
    assert_oauth_error(wrong, 401, "invalid_client")


def test_jwks_verifies_issued_tokens(lv: Live) -> None:
    """The published key is the node's; a standard JOSE library verifies EdDSA tokens with it."""
    http, w = lv.http, lv.w
    keys = http.get("/.well-known/jwks.json").json()["keys"]
    assert keys == [w.service.key.public_jwk()]
    assert keys[0]["alg"] == ("EdDSA" if w.node.suite.name == "intl-v1" else "SM2SM3")
    if keys[0]["alg"] == "EdDSA":
        token = w.password()["access_token"]
        public = jwk.import_key(keys[0], "OKP")
        obj = jws.deserialize_compact(
            token, public, registry=ClientAssertionRegistry.allowing(("EdDSA",))
        )
        assert json.loads(obj.payload)["sub"] == "dr.li"


def test_smart_configuration(lv1: Live) -> None:
    """SMART discovery names the endpoints, grant types, client auth methods and algorithms."""
    doc = lv1.http.get("/.well-known/smart-configuration").json()
    assert doc["token_endpoint"] == lv1.token_url
    assert doc["revocation_endpoint"] == lv1.url + "/auth/revoke"
    assert doc["jwks_uri"] == lv1.url + "/.well-known/jwks.json"
    assert set(doc["grant_types_supported"]) == {"client_credentials", "password", "refresh_token"}
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert {"ES384", "RS384", "SM2SM3"} <= set(
        doc["token_endpoint_auth_signing_alg_values_supported"]
    )
    assert "client-confidential-asymmetric" in doc["capabilities"]
    assert "system/*.rs" in doc["scopes_supported"]


def test_storage_failure_is_temporarily_unavailable() -> None:
    """A database failure is a 503 OAuth error that does not repeat the driver's words."""
    r = oauth_error(StorageError("database error: OperationalError: secret detail"))
    assert r.status_code == 503
    assert b"secret detail" not in r.body
    assert json.loads(r.body)["error"] == "temporarily_unavailable"


def test_openapi_documents_the_form_bodies(lv1: Live) -> None:
    """The OpenAPI document describes the token and revoke forms and the token answer."""
    spec = lv1.http.get("/openapi.json").json()
    token = spec["paths"]["/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["grant_type"]
    assert "client_assertion" in form["properties"]
    assert {"200", "400", "401", "429"} <= set(token["responses"])
    assert "/auth/revoke" in spec["paths"]


# -- over a real HTTP server ------------------------------------------------------------------


def test_real_server_refresh_race_and_lockout(tmp_path: Path, db_url: str | None) -> None:
    """Over real HTTP: 20 concurrent refreshes of one token, one 200; lockout with Retry-After."""
    with live(tmp_path, db_url) as lv:
        url, http = lv.url, lv.http
        answer = http.post(
            "/auth/token", data={"grant_type": "password", "username": "dr.li", "password": PW}
        ).json()
        statuses: list[int] = []
        barrier = threading.Barrier(20)

        def spend() -> None:
            barrier.wait()
            with httpx.Client(base_url=url, timeout=30) as own:
                form = {"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]}
                statuses.append(own.post("/auth/token", data=form).status_code)

        threads = [threading.Thread(target=spend) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(statuses) == [200] + [400] * 19
        wrong = {"grant_type": "password", "username": "tech", "password": "wrong-pass-000"}
        codes = [http.post("/auth/token", data=wrong).status_code for _ in range(6)]
        assert codes == [400] * 5 + [429]
        locked = http.post("/auth/token", data={**wrong, "password": PW})
        assert (locked.status_code, locked.headers["retry-after"]) == (429, "30")


def test_password_change_and_reset_end_every_sign_in(lv1: Live) -> None:
    """POST /auth/password needs the current password and a policy-passing new one, then
    ends the user's sign-ins; an admin's reset does the same; both are on the ledger."""
    http, w1 = lv1.http, lv1.w
    first = w1.password("dr.li", PW)
    bearer = {"authorization": f"Bearer {first['access_token']}"}
    assert http.get("/api/v1/admin/roles", headers=bearer).status_code == 403  # valid, no admin
    change = {"username": "dr.li", "password": PW, "new_password": "a-new-good-password-7"}
    wrong = http.post("/auth/password", data={**change, "password": "not-the-password-1"})
    assert_oauth_error(wrong, 400, "invalid_grant")
    weak = http.post("/auth/password", data={**change, "new_password": "short"})
    assert_oauth_error(weak, 400, "invalid_request")
    missing = http.post("/auth/password", data={"username": "dr.li", "password": PW})
    assert_oauth_error(missing, 400, "invalid_request")
    assert "new_password" in missing.json()["error_description"]
    assert http.get("/api/v1/admin/roles", headers=bearer).status_code == 403  # still valid
    done = http.post("/auth/password", data=change)
    assert done.status_code == 200, done.text
    assert done.json() == {"sessions_ended": 1}
    assert http.get("/api/v1/admin/roles", headers=bearer).status_code == 401
    again = http.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert_oauth_error(again, 400, "invalid_grant")
    second = w1.password("dr.li", "a-new-good-password-7")
    admin = w1.password("root", "root-password-0001")
    reset = http.post(
        "/api/v1/admin/users/dr.li/password",
        json={"password": "reset-by-admin-pw-99"},
        headers={"authorization": f"Bearer {admin['access_token']}"},
    )
    assert reset.status_code == 200, reset.text
    stale = {"authorization": f"Bearer {second['access_token']}"}
    assert http.get("/api/v1/admin/roles", headers=stale).status_code == 401
    assert w1.password("dr.li", "reset-by-admin-pw-99")["access_token"]
    with w1.node.reader() as r:
        kinds = [
            json.loads(r.get_entry(i)).get("meta", {}).get("event") for i in range(r.entry_count())
        ]
    assert "access.user.password.change" in kinds
    assert "access.user.password.reset" in kinds
