"""Soak: simulated clients and a thief against `jwtctl serve`, then invariants checked in the store.

    .venv/bin/python bench/soak.py [--duration 60] [--clients 16] [--max-requests 200000]
                                   [--store sqlite|mongo|both] [--mongo URI]

Each client loops: register, log in, current-user, refresh (one time in three as two tabs at
once, which must agree on one successor), current-user, and logout, after which its old access
token must be refused. One session in four lingers for about 4 s, refreshing every 0.5 s. Now and then it hands the refresh token it is about to rotate to a thief,
who replays it after the grace window (2 s here): that must be refused and must revoke the
session. Bounded in time and in requests. At the end the store is read and these are checked:

1. every successful login has exactly one session, and every session comes from one;
2. no session has two live successors (concurrent refreshes agreed; generations match);
3. every refresh token replayed after the grace window was refused and revoked its session;
4. no session answered 200 to a request made after its end was confirmed to a client (the
   logout's answer, or the answer to a replay that revoked it);
5. no 5xx at all.

It prints the figures (clients, requests, duration, rate, p50/p99) and each invariant, and exits
1 when one fails. Not part of the unit suite.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, mongo_server
from jwtctl.store import open_store

API = "/api/v1/users"
PASSWORD = "soak test password"
GRACE = 2.0


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return doc


@dataclass
class Record:
    """Everything observed, shared by the clients and the thief."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    login_sids: list[str] = field(default_factory=list)
    successors: dict[str, set[str]] = field(default_factory=dict)  # sid -> refresh jtis issued
    disagreements: list[str] = field(default_factory=list)
    session_200s: list[tuple[str, float]] = field(default_factory=list)  # (sid, request start)
    logged_out: dict[str, float] = field(default_factory=dict)  # sid -> when logout answered
    replays: list[tuple[str, int, float, bool]] = field(
        default_factory=list
    )  # sid, status, when, was_live
    stale_200: list[str] = field(default_factory=list)

    def note(self, status: int, took: float, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(took)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500:
                self.server_errors.append(f"{what}: {status}")


class Http:
    def __init__(self, base: str, record: Record) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.record = host, int(port), record
        self.conn: http.client.HTTPConnection | None = None

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            took = time.perf_counter() - t0
            cookies = {}
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
            self.record.note(resp.status, took, f"{method} {path}")
            return resp.status, cookies, json.loads(raw) if raw else {}
        raise RuntimeError("unreachable")


class Thief(threading.Thread):
    def __init__(self, base: str, record: Record, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.http, self.record, self.stop = Http(base, record), record, stop
        self.loot: list[tuple[float, str, str]] = []  # (stolen at, sid, refresh token)
        self.lock = threading.Lock()

    def steal(self, sid: str, token: str) -> None:
        with self.lock:
            self.loot.append((time.monotonic(), sid, token))

    def run(self) -> None:
        while not self.stop.is_set() or self.loot:
            with self.lock:
                due = [x for x in self.loot if time.monotonic() - x[0] > GRACE + 0.5]
                self.loot = [x for x in self.loot if x not in due]
            for _, sid, token in due:
                with self.record.lock:
                    was_live = sid not in self.record.logged_out
                status, _, _ = self.http.call(
                    "POST", f"{API}/refresh-token", {"refreshToken": token}
                )
                answered = time.time()
                with self.record.lock:
                    self.record.replays.append((sid, status, answered, was_live))
            time.sleep(0.05)


class Client(threading.Thread):
    def __init__(
        self,
        n: int,
        base: str,
        record: Record,
        thief: Thief,
        stop: threading.Event,
        budget: threading.Semaphore,
    ) -> None:
        super().__init__(daemon=True)
        self.n, self.base, self.record, self.thief, self.stop, self.budget = (
            n,
            base,
            record,
            thief,
            stop,
            budget,
        )
        self.http = Http(base, record)
        self.rng = random.Random(n)

    def run(self) -> None:
        loop = 0
        while not self.stop.is_set() and self.budget.acquire(blocking=False):
            loop += 1
            with contextlib.suppress(Revoked):
                self.one(f"soak{self.n:02d}x{loop:05d}")

    def one(self, name: str) -> None:
        body = {
            "username": name,
            "email": f"{name}@example.com",
            "fullName": name,
            "password": PASSWORD,
        }
        self.expect(self.http.call("POST", f"{API}/register", body), 201)
        status, cookies, doc = self.http.call(
            "POST", f"{API}/login", {"username": name, "password": PASSWORD}
        )
        self.expect((status, cookies, doc), 200)
        access, refresh = doc["data"]["accessToken"], cookies["refreshToken"]
        sid = claims(access)["sid"]
        with self.record.lock:
            self.record.login_sids.append(sid)
            self.record.successors[sid] = set()
        # One session in four stays open past the grace window (a tab left open, refreshing now
        # and then), so that a stolen token can come back while the session is still live.
        lingering = self.rng.random() < 0.25
        for _ in range(self.rng.randint(1, 4) if not lingering else 8):
            self.authed(sid, access)
            if self.rng.random() < (0.5 if lingering else 0.15):
                self.thief.steal(sid, refresh)
            access, refresh = self.rotate(sid, refresh)
            if lingering:
                time.sleep(0.5)
        self.authed(sid, access)
        status, _, _ = self.http.call(
            "POST", f"{API}/logout", headers={"Authorization": f"Bearer {access}"}
        )
        if status == 200:
            with self.record.lock:
                self.record.logged_out[sid] = time.time()
        after = time.time()
        status, _, _ = self.http.call(
            "GET", f"{API}/current-user", headers={"Authorization": f"Bearer {access}"}
        )
        if status == 200:
            with self.record.lock:
                self.record.stale_200.append(f"{sid} answered 200 after logout at {after}")

    def authed(self, sid: str, access: str) -> None:
        started = time.time()
        status, _, _ = self.http.call(
            "GET", f"{API}/current-user", headers={"Authorization": f"Bearer {access}"}
        )
        if status == 200:
            with self.record.lock:
                self.record.session_200s.append((sid, started))
        elif status == 401:
            raise Revoked  # the thief's replay ended this session: start over
        else:
            self.expect((status, {}, {}), 200)

    def rotate(self, sid: str, refresh: str) -> tuple[str, str]:
        tabs = 2 if self.rng.random() < 0.33 else 1
        answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []

        def tab() -> None:
            h = Http(self.base, self.record) if tabs > 1 else self.http
            answers.append(
                h.call(
                    "POST", f"{API}/refresh-token", headers={"Cookie": f"refreshToken={refresh}"}
                )
            )

        threads = [threading.Thread(target=tab) for _ in range(tabs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        good = [a for a in answers if a[0] == 200]
        if not good:
            raise Revoked
        tokens = {a[1]["refreshToken"] for a in good}
        with self.record.lock:
            if len(tokens) > 1:
                self.record.disagreements.append(f"{sid}: {len(tokens)} different successors")
            self.record.successors[sid].update(claims(t)["jti"] for t in tokens)
        return good[0][2]["data"]["accessToken"], good[0][1]["refreshToken"]

    def expect(self, answer: tuple[int, dict[str, str], dict[str, Any]], status: int) -> None:
        if answer[0] != status:
            raise Revoked


class Revoked(Exception):
    """The session ended under the client (the thief): the client logs in afresh."""


def soak(store_url: str, args: argparse.Namespace, tmp: Path) -> bool:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTCTL_")}
    env.update(JWTCTL_HOME=str(tmp / f"home-{port}"), JWTCTL_DB=store_url, JWTCTL_BCRYPT_ROUNDS="4",
               JWTCTL_REFRESH_GRACE=f"{GRACE:g}s", JWTCTL_LOGIN_MAX_FAILURES="1000000")  # fmt: skip
    log = (tmp / f"serve-{port}.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jwtctl"), "serve", "--port", str(port)],
        env=env,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    record, stop = Record(), threading.Event()
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                Http(base, record).call("GET", "/healthz")
                break
            if time.monotonic() > deadline:
                raise SystemExit("jwtctl serve did not start")
            time.sleep(0.2)
        record = Record()
        thief = Thief(base, record, stop)
        budget = threading.Semaphore(args.max_requests // 10)
        clients = [Client(i, base, record, thief, stop, budget) for i in range(args.clients)]
        t0 = time.monotonic()
        thief.start()
        for c in clients:
            c.start()
        while time.monotonic() - t0 < args.duration and any(c.is_alive() for c in clients):
            if record.requests >= args.max_requests:
                break
            time.sleep(0.2)
        stop.set()
        for c in clients:
            c.join(60)
        thief.join(GRACE + 30)
        elapsed = time.monotonic() - t0
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    return report(store_url, record, elapsed, args.clients, env["JWTCTL_DB"])


def report(label: str, record: Record, elapsed: float, clients: int, url: str) -> bool:
    store = open_store(url)
    users = {u.id for u in store.list_users() if u.username.startswith("soak")}
    sessions = {s.id: s for s in store.list_sessions() if s.user_id in users}
    store.close()
    checks: list[tuple[str, bool, str]] = []
    logins = record.login_sids
    checks.append(("every successful login has exactly one session",
                   len(logins) == len(set(logins)) and set(logins) == set(sessions),
                   f"{len(logins)} logins, {len(sessions)} sessions in the store"))  # fmt: skip
    branched = [
        sid
        for sid, jtis in record.successors.items()
        if sid in sessions and len(jtis) > sessions[sid].generation
    ]
    checks.append(("no session has two live successors", not record.disagreements and not branched,
                   f"{sum(len(j) for j in record.successors.values())} rotations; "
                   f"{len(record.disagreements)} disagreements, {len(branched)} branched"))  # fmt: skip
    bad_replays = []
    for sid, status, _when, was_live in record.replays:
        s = sessions.get(sid)
        if (
            status != 401
            or s is None
            or s.revoked_at is None
            or (was_live and s.revoke_reason not in ("reuse", "logout"))
        ):
            bad_replays.append(sid)
    reuse = sum(
        1
        for sid, *_ in record.replays
        if sessions.get(sid) and sessions[sid].revoke_reason == "reuse"
    )
    checks.append(("every replay after the grace window was refused and revoked its session", not bad_replays,
                   f"{len(record.replays)} replays, {reuse} revoked for reuse, {len(bad_replays)} not"))  # fmt: skip
    # When each session's end was confirmed to a client: the logout's answer, or the answer to
    # a replay that revoked it. A request made after that must never be answered 200.
    confirmed = dict(record.logged_out)
    for sid, status, answered, _ in record.replays:
        if status == 401 and sessions.get(sid) is not None and sessions[sid].revoked_at is not None:
            confirmed[sid] = min(confirmed.get(sid, answered), answered)
    stale = list(record.stale_200)
    for sid, started in record.session_200s:
        if sid in confirmed and started > confirmed[sid]:
            stale.append(f"{sid} answered 200 to a request made after its end was confirmed")
    checks.append(
        ("no revoked session answered 200 afterwards", not stale, f"{len(stale)} violations")
    )
    checks.append(("zero 5xx", not record.server_errors, f"{len(record.server_errors)} 5xx"))
    lat = sorted(record.latencies)
    p50 = statistics.median(lat) * 1000 if lat else 0.0
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0.0
    print(f"\n== {label}")
    print(f"clients {clients}, requests {record.requests}, duration {elapsed:.1f} s, {record.requests / elapsed:,.0f} req/s, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(record.statuses.items())))
    print(
        f"faults injected: {len(record.replays)} stolen refresh tokens replayed after the grace window"
    )
    ok = True
    for name, passed, detail in checks:
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {name}  ({detail})")
    return ok


@contextlib.contextmanager
def maybe_mongo(wanted: bool, uri: str | None) -> Iterator[str | None]:
    if not wanted:
        yield None
        return
    with mongo_server(uri) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds per store (default 60)"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=200_000, help="per store")
    parser.add_argument("--store", choices=("sqlite", "mongo", "both"), default="both")
    parser.add_argument("--mongo", help="MongoDB URI (default: start SecantusDB from .venv-mongo)")
    args = parser.parse_args()
    ok = True
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        maybe_mongo(args.store != "sqlite", args.mongo) as mongo,
    ):
        tmp = Path(tmp_name)
        if args.store in ("sqlite", "both"):
            ok &= soak(f"sqlite:///{str(tmp / 'soak.db').lstrip('/')}", args, tmp)
        if mongo is not None:
            base, _, query = mongo.partition("?")
            ok &= soak(f"{base.rstrip('/')}/jwtctl_soak?{query}", args, tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
