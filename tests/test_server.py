"""The dev server over real HTTP on 127.0.0.1:0: every route, every status code of SPEC §6,
cookies, cross-site protection, input handling, and the session races through HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwtctl.auth import Auth
from jwtctl.store import Store, open_store
from tests.helpers import PUBLIC_USER_KEYS
from tests.http_helpers import Client, make_app, running
from tests.test_sessions import Clock, make_auth

API = "/api/v1/users"
PW = "correct horse battery"
ALICE = {
    "username": "alice",
    "email": "alice@example.com",
    "fullName": "Alice Liddell",
    "password": PW,
}


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def auth(store: Store, tmp_path: Path, clock: Clock) -> Auth:
    return make_auth(store, tmp_path, clock, login_max_failures=3, refresh_grace=10, max_body=4096)


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def base(auth: Auth, log: list[str]) -> Iterator[str]:
    with running(
        make_app(auth, allowed_origins=["http://localhost:5173"]), log=log, timeout=2
    ) as url:
        yield url


@pytest.fixture
def client(base: str) -> Client:
    c = Client(base)
    assert c.post(f"{API}/register", ALICE).status == 201
    return c


def logged_in(base: str, name: str = "alice") -> Client:
    c = Client(base)
    reply = c.post(f"{API}/login", {"username": name, "password": PW})
    assert reply.status == 200, reply.raw
    return c


def assert_error(reply: Any, status: int, text: str = "") -> dict[str, Any]:
    assert reply.status == status, reply.raw
    doc: dict[str, Any] = reply.json()
    assert doc["statusCode"] == status and doc["success"] is False and doc["data"] is None
    assert isinstance(doc["errors"], list)
    assert text in doc["message"], doc["message"]
    return doc


# --- register ------------------------------------------------------------------------------------


def test_register_201_with_the_public_user(base: str) -> None:
    reply = Client(base).post(f"{API}/register", ALICE)
    assert reply.status == 201
    doc = reply.json()
    assert (doc["statusCode"], doc["success"]) == (201, True) and "message" in doc
    assert set(doc["data"]) == PUBLIC_USER_KEYS
    assert "password" not in reply.raw.decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": None}, "username"),
        ({"password": 12345678}, "password"),
        ({"email": {"$ne": None}}, "email"),
        ({"username": {"$gt": ""}}, "username"),
        ({"fullName": ["x"]}, "fullName"),
        ({"email": "not-an-email"}, "email"),
        ({"username": "no spaces allowed"}, "username"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 73}, "password"),
    ],
)
def test_register_400_names_the_field(base: str, change: dict[str, Any], field: str) -> None:
    body = {**ALICE, **change}
    body = {k: v for k, v in body.items() if v is not None}
    doc = assert_error(Client(base).post(f"{API}/register", body), 400)
    assert doc["errors"][0]["field"] == field


def test_register_409_on_duplicates(client: Client) -> None:
    doc = assert_error(client.post(f"{API}/register", {**ALICE, "email": "x@example.com"}), 409)
    assert doc["errors"][0]["field"] == "username"
    doc = assert_error(client.post(f"{API}/register", {**ALICE, "username": "alice2"}), 409)
    assert doc["errors"][0]["field"] == "email"


def test_body_rules_415_413_400(base: str) -> None:
    c = Client(base)
    assert_error(
        c.post(
            f"{API}/register",
            raw=b"username=alice",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    assert_error(
        c.post(f"{API}/register", raw=b'{"a":1}', headers={"Content-Type": "text/plain"}), 415
    )
    assert_error(
        c.post(
            f"{API}/register", raw=b"{}" + b" " * 5000, headers={"Content-Type": "application/json"}
        ),
        413,
    )
    assert_error(
        c.post(f"{API}/register", raw=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "not valid JSON",
    )
    assert_error(
        c.post(f"{API}/register", raw=b"[1,2]", headers={"Content-Type": "application/json"}),
        400,
        "JSON object",
    )
    assert_error(
        c.post(f"{API}/register", raw=b"\xff\xfe", headers={"Content-Type": "application/json"}),
        400,
    )
    charset = c.post(
        f"{API}/register",
        raw=b'{"username": 1}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert_error(charset, 400, "must be a string")


# --- login ---------------------------------------------------------------------------------------


def test_login_sets_cookies_exactly(client: Client, base: str, auth: Auth) -> None:
    c = Client(base)
    reply = c.post(
        f"{API}/login", {"username": "alice", "password": PW}, headers={"User-Agent": "pytest-ua"}
    )
    assert reply.status == 200
    assert reply.header("Cache-Control") == "no-store"
    doc = reply.json()
    assert (
        set(doc["data"]) == {"user", "accessToken"} and doc["data"]["user"]["username"] == "alice"
    )
    assert "refreshToken" not in reply.raw.decode()
    cookies = reply.cookies()
    access, refresh = cookies["accessToken"], cookies["refreshToken"]
    assert "; Path=/;" in access and "; Path=/api/v1/users;" in refresh
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert f"Max-Age={auth.settings.access_ttl}" in access
    max_age = int(refresh.split("Max-Age=")[1].split(";")[0])
    assert auth.settings.refresh_ttl - 2 <= max_age <= auth.settings.refresh_ttl
    session = auth.sessions.list()[0]
    assert (session.ip, session.user_agent) == ("127.0.0.1", "pytest-ua")


def test_login_by_email_and_bearer_access(client: Client, base: str) -> None:
    c = Client(base)
    token = c.post(f"{API}/login", {"email": "ALICE@example.com", "password": PW}).json()["data"][
        "accessToken"
    ]
    for scheme in ("Bearer", "bearer", "BEARER"):
        reply = Client(base).get(
            f"{API}/current-user", headers={"Authorization": f"{scheme} {token}"}
        )
        assert reply.status == 200 and reply.json()["data"]["username"] == "alice"
    assert_error(
        Client(base).get(f"{API}/current-user", headers={"Authorization": f"Bearer  {token}"}), 401
    )
    assert_error(
        Client(base).get(f"{API}/current-user", headers={"Authorization": f"Basic {token}"}), 401
    )


def test_login_401_same_answer_for_unknown_and_wrong(client: Client, base: str) -> None:
    wrong = assert_error(
        Client(base).post(f"{API}/login", {"username": "alice", "password": "wrong password"}), 401
    )
    unknown = assert_error(
        Client(base).post(f"{API}/login", {"username": "nobody", "password": "wrong password"}), 401
    )
    assert wrong == unknown


def test_login_400s(client: Client, base: str) -> None:
    for name in ("alice", "nobody"):
        doc = assert_error(
            Client(base).post(f"{API}/login", {"username": name, "password": "x" * 73}), 400
        )
        assert doc["errors"][0]["field"] == "password" and "72" in doc["message"]
    assert_error(
        Client(base).post(f"{API}/login", {"password": PW}), 400, "username or email is required"
    )
    assert_error(
        Client(base).post(f"{API}/login", {"username": {"$ne": None}, "password": PW}),
        400,
        "username",
    )
    assert_error(
        Client(base).post(f"{API}/login", {"username": "alice", "password": {"$ne": None}}),
        400,
        "password",
    )


def test_login_429_after_the_limit_even_with_the_right_password(client: Client, base: str) -> None:
    for _ in range(3):
        assert_error(
            Client(base).post(f"{API}/login", {"username": "alice", "password": "wrong password"}),
            401,
        )
    reply = Client(base).post(f"{API}/login", {"username": "alice", "password": PW})
    assert_error(reply, 429)
    retry = reply.header("Retry-After")
    assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 900
    for _ in range(3):
        Client(base).post(f"{API}/login", {"username": "ghost", "password": "wrong password"})
    assert_error(
        Client(base).post(f"{API}/login", {"username": "ghost", "password": "wrong password"}), 429
    )


def test_disabled_user_gets_401(client: Client, base: str, auth: Auth) -> None:
    auth.users.set_disabled("alice", True)
    assert_error(
        Client(base).post(f"{API}/login", {"username": "alice", "password": PW}),
        401,
        "invalid user credentials",
    )


# --- refresh, logout, current user, sessions ---------------------------------------------------------


def test_refresh_by_cookie_and_by_body(client: Client, base: str) -> None:
    c = logged_in(base)
    old = c.jar["refreshToken"]
    reply = c.post(f"{API}/refresh-token")
    assert reply.status == 200 and reply.header("Cache-Control") == "no-store"
    assert set(reply.json()["data"]) == {"accessToken"}
    assert (
        c.jar["refreshToken"] != old
        and "refreshToken" not in reply.raw.decode().split("Set-Cookie")[0]
    )
    body_client = logged_in(base)
    token = body_client.jar.pop("refreshToken")
    reply = body_client.post(f"{API}/refresh-token", {"refreshToken": token}, cookies=False)
    assert reply.status == 200 and "refreshToken" in reply.cookies()
    assert_error(Client(base).post(f"{API}/refresh-token"), 401, "no refresh token")
    assert_error(Client(base).post(f"{API}/refresh-token", {"refreshToken": "nonsense"}), 401)
    assert_error(Client(base).post(f"{API}/refresh-token", {"refreshToken": {"$ne": None}}), 400)


def test_current_user_and_401s(client: Client, base: str, clock: Clock) -> None:
    c = logged_in(base)
    assert c.get(f"{API}/current-user").json()["data"]["username"] == "alice"
    assert_error(Client(base).get(f"{API}/current-user"), 401)
    assert_error(
        Client(base).get(f"{API}/current-user", headers={"Cookie": "accessToken=garbage"}), 401
    )
    clock.advance(16 * 60)
    assert_error(c.get(f"{API}/current-user"), 401, "expired")


def test_logout_clears_cookies_and_ends_the_session(client: Client, base: str) -> None:
    c = logged_in(base)
    cookie_header = "; ".join(f"{k}={v}" for k, v in c.jar.items())
    reply = c.post(f"{API}/logout")
    assert reply.status == 200 and reply.header("Cache-Control") == "no-store"
    for name, value in reply.cookies().items():
        assert "Max-Age=0" in value and name in ("accessToken", "refreshToken")
    assert "Path=/api/v1/users" in reply.cookies()["refreshToken"]
    stale = Client(base)
    assert_error(
        stale.get(f"{API}/current-user", headers={"Cookie": cookie_header}), 401, "revoked"
    )
    assert_error(stale.post(f"{API}/refresh-token", headers={"Cookie": cookie_header}), 401)
    assert_error(Client(base).post(f"{API}/logout"), 401)


def test_logout_all_and_session_routes(client: Client, base: str) -> None:
    first, second = logged_in(base), logged_in(base)
    listed = second.get(f"{API}/sessions").json()["data"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    current = next(s for s in listed if s["current"])
    other = next(s for s in listed if not s["current"])
    assert current["state"] == "active" and "jtiHash" not in str(listed)
    assert_error(second.request("DELETE", f"{API}/sessions/6b0000000000000000000000"), 404)
    assert second.request("DELETE", f"{API}/sessions/{other['id']}").status == 200
    assert_error(first.get(f"{API}/current-user"), 401)
    Client(base).post(f"{API}/register", {**ALICE, "username": "bob", "email": "bob@example.com"})
    bob = logged_in(base, "bob")
    assert_error(bob.request("DELETE", f"{API}/sessions/{current['id']}"), 404)  # not bob's
    third = logged_in(base)
    reply = third.post(f"{API}/logout-all")
    assert reply.status == 200 and reply.json()["data"]["sessionsEnded"] == 2
    assert_error(second.get(f"{API}/current-user"), 401)
    assert bob.get(f"{API}/current-user").status == 200


# --- cross-site protection and CORS ------------------------------------------------------------------


@pytest.mark.parametrize("route", ["refresh-token", "logout", "logout-all"])
def test_cookie_requests_from_another_origin_get_403(client: Client, base: str, route: str) -> None:
    c = logged_in(base)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Referer": "http://evil.example/page"},
        {"Origin": "null"},
    ):
        assert_error(c.post(f"{API}/{route}", headers=headers), 403, "cross-site")
    assert c.get(f"{API}/current-user").status == 200  # nothing was changed
    ok = c.post(f"{API}/{route}", headers={"Origin": base})
    assert ok.status == 200


def test_allowed_origin_and_bearer_are_not_refused(client: Client, base: str) -> None:
    c = logged_in(base)
    reply = c.post(f"{API}/refresh-token", headers={"Origin": "http://localhost:5173"})
    assert reply.status == 200
    assert reply.header("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    token = c.jar["accessToken"]
    bearer = Client(base).post(
        f"{API}/logout",
        headers={"Authorization": f"Bearer {token}", "Origin": "http://evil.example"},
    )
    assert bearer.status == 200
    preflight = Client(base).request(
        "OPTIONS", f"{API}/login", headers={"Origin": "http://localhost:5173"}
    )
    assert preflight.status == 204 and "POST" in (
        preflight.header("Access-Control-Allow-Methods") or ""
    )
    stranger = Client(base).request(
        "OPTIONS", f"{API}/login", headers={"Origin": "http://evil.example"}
    )
    assert stranger.header("Access-Control-Allow-Origin") is None


# --- other routes and statuses -----------------------------------------------------------------------


def test_jwks_healthz_404_405(base: str, auth: Auth) -> None:
    jwks = Client(base).get("/.well-known/jwks.json")
    assert jwks.status == 200 and jwks.json() == {"keys": []}
    health = Client(base).get("/healthz")
    assert health.status == 200 and health.json()["data"]["status"] == "ok"
    assert_error(Client(base).get("/nope"), 404)
    assert_error(Client(base).get(f"{API}/sessions/"), 404)
    reply = Client(base).get(f"{API}/login")
    assert_error(reply, 405)
    assert "POST" in (reply.header("Allow") or "")
    assert_error(Client(base).request("PUT", "/healthz"), 405)
    assert Client(base).request("HEAD", "/healthz").status == 200


def test_jwks_publishes_asymmetric_keys(tmp_path: Path) -> None:
    store = open_store("memory:")
    auth = make_auth(store, tmp_path, alg="EdDSA", sources={"alg": "test"})
    with running(make_app(auth)) as url:
        keys = Client(url).get("/.well-known/jwks.json").json()["keys"]
    assert [k["alg"] for k in keys] == ["EdDSA"] and "d" not in keys[0]


def test_store_unavailable_is_503_with_the_envelope(tmp_path: Path) -> None:
    store = open_store("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300")
    auth = make_auth(store, tmp_path)
    with running(make_app(auth)) as url:
        assert_error(Client(url).post(f"{API}/register", ALICE), 503, "unavailable")
        assert_error(Client(url).post(f"{API}/login", {"username": "a", "password": PW}), 503)
        assert_error(Client(url).get("/healthz"), 503)
    store.close()


# --- HTTP itself ------------------------------------------------------------------------------------


def raw_exchange(base: str, data: bytes, *, wait: float = 5) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", b"431"),
        (
            b"POST /api/v1/users/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"411",
        ),
        (b"POST /api/v1/users/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"400"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"400"),
    ],
)
def test_malformed_http_is_4xx_never_5xx(base: str, request_bytes: bytes, status: bytes) -> None:
    answer = raw_exchange(base, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b'"success": false' in answer or b'"success":false' in answer


def test_keep_alive_serves_many_requests_on_one_connection(base: str) -> None:
    c = Client(base)
    for _ in range(20):
        assert c.get("/healthz", reuse=True).status == 200
    assert c.keep_alive is not None
    c.keep_alive.close()


def test_silent_client_is_dropped_after_the_timeout(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # then nothing more
        t0 = time.monotonic()
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")  # told, then the connection closed
        assert time.monotonic() - t0 < 9
    with socket.create_connection((host, int(port)), timeout=10) as s:
        assert s.recv(100) == b""  # a connection that never sends is closed quietly


def test_access_log_has_one_line_per_request_and_no_secrets(
    client: Client, base: str, log: list[str]
) -> None:
    c = logged_in(base)
    c.post(f"{API}/refresh-token")
    token = c.jar["accessToken"]
    Client(base).get(
        f"{API}/current-user?token={token}", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 5  # lines are written once per loop iteration, after the answer
    while "current-user" not in "\n".join(log) and time.monotonic() < deadline:
        time.sleep(0.01)
    text = "\n".join(log)
    assert log and all(line.startswith("127.0.0.1 ") for line in log)
    assert (
        '"POST /api/v1/users/login" 200' in text and '"GET /api/v1/users/current-user" 200' in text
    )
    for secret in (token, PW, c.jar["refreshToken"], "token="):
        assert secret not in text


def test_the_app_is_pep3333_compliant(auth: Auth) -> None:
    from wsgiref.validate import validator

    with running(validator(make_app(auth))) as url:
        c = Client(url)
        assert c.post(f"{API}/register", ALICE).status == 201
        assert c.post(f"{API}/login", {"username": "alice", "password": PW}).status == 200
        assert c.get(f"{API}/current-user").status == 200
        assert c.get("/nope").status == 404


# --- the session races, through HTTP -----------------------------------------------------------------


def test_twenty_parallel_refreshes_with_one_cookie_agree(client: Client, base: str) -> None:
    c = logged_in(base)
    cookie = f"refreshToken={c.jar['refreshToken']}"
    barrier = threading.Barrier(20)
    replies: list[Any] = [None] * 20

    def go(i: int) -> None:
        barrier.wait()
        replies[i] = Client(base).post(f"{API}/refresh-token", headers={"Cookie": cookie})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r.status == 200 for r in replies), [r.raw for r in replies if r.status != 200]
    successors = {r.cookies()["refreshToken"].split(";")[0] for r in replies}
    assert len(successors) == 1


def test_replay_after_grace_is_401_and_ends_the_session(
    client: Client, base: str, clock: Clock
) -> None:
    c = logged_in(base)
    stolen = c.jar["refreshToken"]
    assert c.post(f"{API}/refresh-token").status == 200
    clock.advance(11)
    thief = Client(base)
    reply = thief.post(f"{API}/refresh-token", {"refreshToken": stolen})
    assert_error(reply, 401, "reused")
    assert_error(c.get(f"{API}/current-user"), 401, "revoked")
    assert_error(c.post(f"{API}/refresh-token"), 401)


def test_pipelined_requests_are_answered_in_order(base: str) -> None:
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(base, two)
    first, second = answer.find(b"HTTP/1.1 200 "), answer.find(b"HTTP/1.1 404 ")
    assert 0 == first < second


def test_idle_connections_do_not_starve_new_clients(base: str) -> None:
    """Hundreds of idle keep-alive connections (far more than the server's threads) cost no
    thread: a new client is still answered at once."""
    host, port = base.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(200)]
    try:
        assert Client(base).get("/healthz").status == 200
    finally:
        for s in idle:
            s.close()


def test_expect_100_continue(base: str) -> None:
    body = b'{"username": "a", "password": "correct horse battery"}'
    head = (b"POST /api/v1/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))  # fmt: skip
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ")
    too_big = b"POST /api/v1/users/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
    assert raw_exchange(base, too_big).startswith(b"HTTP/1.1 413 ")


def test_http_1_0_closes_unless_keep_alive(base: str) -> None:
    answer = raw_exchange(base, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer
