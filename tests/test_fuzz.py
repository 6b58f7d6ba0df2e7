"""Bad input at scale (hypothesis, bounded): arbitrary JSON, bytes and headers to every route
never get a 5xx and every error carries the envelope; arbitrary arguments to every CLI command
exit 0 to 7, never with a traceback."""

from __future__ import annotations

import http.client
import json
import socket
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtctl.store import open_store
from tests.helpers import jwtctl, leaf_commands
from tests.http_helpers import make_app, running
from tests.test_sessions import make_auth

ROUTES = [
    ("POST", "/api/v1/users/register"), ("POST", "/api/v1/users/login"),
    ("POST", "/api/v1/users/refresh-token"), ("POST", "/api/v1/users/logout"),
    ("POST", "/api/v1/users/logout-all"), ("GET", "/api/v1/users/current-user"),
    ("GET", "/api/v1/users/sessions"), ("DELETE", "/api/v1/users/sessions/6b0000000000000000000000"),
    ("GET", "/.well-known/jwks.json"), ("GET", "/healthz"), ("PUT", "/api/v1/users/login"),
    ("GET", "/api/v1/users/%00%ff"), ("OPTIONS", "/api/v1/users/login"), ("PATCH", "/x"),
]  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=5)
    ),
    max_leaves=15,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        name: JSON
        | st.dictionaries(st.sampled_from(["$ne", "$gt", "$regex", "$where"]), JSON, min_size=1)
        for name in ("username", "email", "fullName", "password", "refreshToken")
    },
)
HEADER_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " -_=;,.:/+*'\"()[]", max_size=60
)
HEADER_NAMES = ["Origin", "Referer", "Authorization", "Cookie", "User-Agent", "Content-Type", "Accept",
                "X-Forwarded-For", "Expect", "Connection", "Host"]  # fmt: skip
HEADERS = st.dictionaries(
    st.sampled_from(HEADER_NAMES),
    HEADER_TEXT,
    max_size=5,
)
RUN = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = open_store("memory:")
    auth = make_auth(store, tmp_path_factory.mktemp("fuzz"), login_max_failures=10**6)
    auth.users.create(username="alice", email="alice@example.com", password="correct horse battery")
    with running(make_app(auth, allowed_origins=["http://localhost:5173"]), timeout=5) as url:
        yield url


def send(
    base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check(status: int, raw: bytes, path: str, method: str) -> None:
    assert status < 500, raw
    if status == 204 or method == "HEAD":
        return
    doc = json.loads(raw)
    if path == "/.well-known/jwks.json" and status == 200:
        assert set(doc) == {"keys"}
        return
    assert doc["statusCode"] == status and doc["success"] is (status < 400)
    if status >= 400:
        assert (
            doc["data"] is None
            and isinstance(doc["errors"], list)
            and isinstance(doc["message"], str)
        )


@given(route=st.sampled_from(ROUTES), fields=FIELDS, headers=HEADERS)
@RUN
def test_arbitrary_json_fields_and_headers(
    base: str, route: tuple[str, str], fields: dict[str, Any], headers: dict[str, str]
) -> None:
    method, path = route
    headers = {"Content-Type": "application/json", **headers}
    status, raw = send(base, method, path, json.dumps(fields).encode(), headers)
    check(status, raw, path, method)


@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=300), ctype=st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/vnd.x+json",
     "application/json; charset=latin-1", "multipart/form-data; boundary=x"]), value=JSON)  # fmt: skip
@RUN
def test_arbitrary_bodies(
    base: str, route: tuple[str, str], body: bytes, ctype: str, value: Any
) -> None:
    method, path = route
    for payload in (body, json.dumps(value).encode()):
        status, raw = send(base, method, path, payload, {"Content-Type": ctype} if ctype else {})
        check(status, raw, path, method)


@given(head=st.binary(min_size=1, max_size=400))
@RUN
def test_arbitrary_request_bytes(base: str, head: bytes) -> None:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + b"\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            assert not line.startswith(b"HTTP/1.1 5"), answer[:300]


# --- the CLI ------------------------------------------------------------------------------------


def command_options() -> dict[str, list[str]]:
    """Each command's option names, but serve: a server would not return."""
    found = {
        path: [o for p in cmd.params for o in p.opts if o.startswith("-")]
        for path, cmd in leaf_commands().items()
    }
    found.pop("serve")
    return found


COMMANDS = command_options()
# No "/" or "~": arguments are file names too, and must stay inside the test's folder.
WORD = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/~\\\x00"),
    max_size=12,
)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_arguments_never_crash(command: str, tmp_path: Path) -> None:
    jwtctl(
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--password-stdin",
        input="correct horse battery\n",
    )
    options = COMMANDS[command]
    words = st.one_of(
        st.sampled_from(options or ["--help"]),
        WORD,
        st.sampled_from(["alice", "-", "0", "1d", "jsonl", "HS256"]),
    )

    @given(args=st.lists(words, max_size=5), stdin=st.text(max_size=40))
    @settings(max_examples=25, deadline=None)
    def run(args: list[str], stdin: str) -> None:
        result = jwtctl(*command.split(), *args, input=stdin)
        assert 0 <= result.exit_code <= 7, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, (
            args,
            result.stderr,
        )

    run()
