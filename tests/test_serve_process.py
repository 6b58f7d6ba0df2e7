"""`jwtctl serve` as a real process: banner, clean shutdown, a taken port, two processes on one
store, and a store outage under a running server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import MongoServer
from tests.http_helpers import Client

API = "/api/v1/users"
PW = "correct horse battery"
JWTCTL = shutil.which("jwtctl", path=str(Path(sys.executable).parent)) or "jwtctl"


class Served:
    def __init__(
        self, proc: subprocess.Popen[str], lines: list[str], url: str, drainer: threading.Thread
    ) -> None:
        self.proc, self.lines, self.url, self.drainer = proc, lines, url, drainer

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server, wait for it to exit, and for its last stderr lines to be read."""
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.drainer.join(10)
        return code


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    proc = subprocess.Popen(
        [JWTCTL, "serve", "--port", "0", "--insecure-cookies", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env or os.environ.copy(),
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("  stop "):  # the banner's last line
                ready.set()
        ready.set()

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    ready.wait(60)
    url = next(
        (line.split("listening on ")[1].strip() for line in lines if "listening on" in line), ""
    )
    served = Served(proc, lines, url, drainer)
    try:
        assert url, "\n".join(lines)
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        drainer.join(10)
        assert proc.stderr is not None
        proc.stderr.close()


def register(url: str, name: str = "alice") -> None:
    body = {
        "username": name,
        "email": f"{name}@example.com",
        "fullName": name.title(),
        "password": PW,
    }
    assert Client(url).post(f"{API}/register", body).status == 201


def login(url: str, name: str = "alice") -> Client:
    c = Client(url)
    assert c.post(f"{API}/login", {"username": name, "password": PW}).status == 200
    return c


def test_banner_and_sigterm_exit_0() -> None:
    with serve("--store", "memory") as s:
        text = "\n".join(s.lines)
        for part in ("listening on http://127.0.0.1:", "store    memory:", "access HS256", "cookies  HttpOnly",
                     "curl -s http://127.0.0.1:", "--insecure-cookies"):  # fmt: skip
            assert part in text, part
        assert Client(s.url).get("/healthz").status == 200
        assert s.stop() == 0
        assert any("shutting down" in line for line in s.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_in_flight_request_finishes_on_shutdown(sig: int) -> None:
    env = {**os.environ, "JWTCTL_BCRYPT_ROUNDS": "13"}  # a login takes a good fraction of a second
    with serve("--store", "memory", env=env) as s:
        register(s.url)
        result: dict[str, int] = {}

        def slow_login() -> None:
            result["status"] = (
                Client(s.url).post(f"{API}/login", {"username": "alice", "password": PW}).status
            )

        t = threading.Thread(target=slow_login)
        t.start()
        time.sleep(0.15)
        code = s.stop(sig)
        t.join(30)
        assert code == 0
        assert result.get("status") == 200


def test_idle_keep_alive_connection_does_not_delay_shutdown() -> None:
    with serve("--store", "memory") as s:
        c = Client(s.url)
        assert c.get("/healthz", reuse=True).status == 200  # connection left open
        t0 = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - t0 < 10
        assert c.keep_alive is not None
        c.keep_alive.close()


def test_port_already_taken_exits_1_with_a_clear_message() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run([JWTCTL, "serve", "--store", "memory", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1
    assert f"jwtctl: error: 127.0.0.1:{port} is already in use" in run.stderr
    assert "Traceback" not in run.stderr


def _two_servers_behave_as_one(db_url: str) -> None:
    env = {
        **os.environ,
        "JWTCTL_DB": db_url,
        "JWTCTL_LOGIN_MAX_FAILURES": "4",
        "JWTCTL_REFRESH_GRACE": "1s",
    }
    with serve(env=env) as a, serve(env=env) as b:
        register(a.url)
        c = login(a.url)
        # a session made on A is known to B: B refreshes it, A accepts the new access token
        cookie = f"refreshToken={c.jar['refreshToken']}"
        stolen = c.jar["refreshToken"]
        on_b = Client(b.url).post(f"{API}/refresh-token", headers={"Cookie": cookie})
        assert on_b.status == 200
        token = on_b.json()["data"]["accessToken"]
        assert (
            Client(a.url)
            .get(f"{API}/current-user", headers={"Authorization": f"Bearer {token}"})
            .status
            == 200
        )
        # reuse detected on A of a token rotated on B ends the session for both
        time.sleep(1.2)
        assert Client(a.url).post(f"{API}/refresh-token", {"refreshToken": stolen}).status == 401
        assert (
            Client(b.url)
            .get(f"{API}/current-user", headers={"Authorization": f"Bearer {token}"})
            .status
            == 401
        )
        # failed logins are counted in the store: 2 on A + 2 on B, then 429 on either
        for url in (a.url, a.url, b.url, b.url):
            assert (
                Client(url)
                .post(f"{API}/login", {"username": "alice", "password": "wrong pw!"})
                .status
                == 401
            )
        assert (
            Client(a.url).post(f"{API}/login", {"username": "alice", "password": PW}).status == 429
        )
        assert (
            Client(b.url).post(f"{API}/login", {"username": "alice", "password": PW}).status == 429
        )
        assert a.stop() == 0 and b.stop() == 0


def test_two_servers_on_one_sqlite_file_behave_as_one(tmp_path: Path) -> None:
    _two_servers_behave_as_one(f"sqlite:///{str(tmp_path / 'shared.db').lstrip('/')}")


@pytest.mark.mongo
def test_two_servers_on_one_mongodb_behave_as_one(mongo_db_url: str) -> None:
    _two_servers_behave_as_one(mongo_db_url)


@pytest.mark.mongo
def test_store_outage_gives_503_and_the_server_recovers(restartable_mongo: MongoServer) -> None:
    url = (
        restartable_mongo.uri.replace("/?", "/outage?")
        + "&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
    )
    env = {**os.environ, "JWTCTL_DB": url}
    with serve(env=env) as s:
        register(s.url)
        c = login(s.url)
        restartable_mongo.stop()
        t0 = time.monotonic()
        down = Client(s.url).get(
            f"{API}/current-user", headers={"Authorization": f"Bearer {c.jar['accessToken']}"}
        )
        assert down.status == 503 and down.json()["success"] is False
        assert time.monotonic() - t0 < 5  # bounded by the configured 1 s selection timeout
        assert Client(s.url).get("/healthz").status == 503
        restartable_mongo.start()
        deadline = time.monotonic() + 30
        while Client(s.url).get("/healthz").status != 200:
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.5)
        assert c.get(f"{API}/current-user").status == 200  # the session survived the outage
        assert c.post(f"{API}/refresh-token").status == 200
        assert s.stop() == 0


def test_server_started_while_the_store_is_down_warns_and_serves_503() -> None:
    url = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    with serve(env={**os.environ, "JWTCTL_DB": url}) as s:
        assert any("the store does not answer yet" in line for line in s.lines)
        assert Client(s.url).get("/healthz").status == 503
        assert s.stop() == 0
