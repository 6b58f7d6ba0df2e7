"""Races, with real threads against each real store (and two processes on one SQLite file).
Each test names the property it protects."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from jwtctl.auth import Auth
from jwtctl.errors import JwtctlError, RefreshReuse, RevokedToken, TokenError
from jwtctl.sessions import Issued
from jwtctl.store import Store
from jwtctl.store.sqlite import SQLiteStore
from jwtctl.tokens import parse
from tests.test_sessions import PW, Clock, make_auth


@pytest.fixture
def auth(store: Store, tmp_path: Path) -> Auth:
    a = make_auth(store, tmp_path, login_max_failures=1000)
    a.users.create(username="alice", email="alice@example.com", password=PW)
    return a


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in n threads released at once; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except JwtctlError as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_twenty_concurrent_refreshes_rotate_once_and_agree_on_the_successor(auth: Auth) -> None:
    """Several tabs refreshing at once must not log the user out or branch the chain."""
    start = auth.login("alice", PW)
    results = together(20, lambda _: auth.sessions.refresh(start.refresh_token))
    answers = [r for r in results if isinstance(r, Issued)]
    assert len(answers) == 20, [r for r in results if not isinstance(r, Issued)]
    assert len({a.refresh_token for a in answers}) == 1
    assert {parse(a.refresh_token).payload["sid"] for a in answers} == {start.session.id}
    assert sum(not a.retried for a in answers) == 1
    session = auth.sessions.get(start.session.id)
    assert session.generation == 1 and session.state(time.time()) == "active"
    assert auth.sessions.refresh(answers[0].refresh_token).session.generation == 2


def test_replay_after_grace_revokes_the_session_and_its_successor_only(
    store: Store, tmp_path: Path
) -> None:
    """A stolen refresh token replayed late ends that session; other sessions keep working."""
    clock = Clock(time.time())
    auth = make_auth(store, tmp_path, clock, refresh_grace=10, login_max_failures=1000)
    auth.users.create(username="alice", email="alice@example.com", password=PW)
    stolen, sibling = auth.login("alice", PW), auth.login("alice", PW)
    successor = auth.sessions.refresh(stolen.refresh_token)
    clock.advance(11)
    results = together(10, lambda _: auth.sessions.refresh(stolen.refresh_token))
    assert all(isinstance(r, RefreshReuse | RevokedToken) for r in results), results
    assert sum(isinstance(r, RefreshReuse) for r in results) >= 1
    assert auth.sessions.get(stolen.session.id).revoke_reason == "reuse"
    with pytest.raises(RevokedToken):
        auth.sessions.refresh(successor.refresh_token)
    with pytest.raises(RevokedToken):
        auth.sessions.check_access(successor.access_token)
    assert auth.sessions.check_access(sibling.access_token).session.id == sibling.session.id
    assert auth.sessions.refresh(sibling.refresh_token).session.generation == 1


def test_refreshes_racing_a_revoke_never_leave_a_live_session(auth: Auth) -> None:
    """Revocation wins: whatever the interleaving, the session ends revoked and no token handed
    out, before or after the revoke, works afterwards."""
    start = auth.login("alice", PW)
    issued: list[Issued] = []
    lock = threading.Lock()
    barrier = threading.Barrier(11)

    def refresher(_: int) -> None:
        token = start.refresh_token
        barrier.wait()
        for _ in range(5):
            try:
                nxt = auth.sessions.refresh(token)
            except TokenError:
                return
            with lock:
                issued.append(nxt)
            token = nxt.refresh_token

    def revoker() -> None:
        barrier.wait()
        time.sleep(0.005)
        auth.sessions.logout(start.session.id, reason="admin")

    threads = [threading.Thread(target=refresher, args=(i,)) for i in range(10)]
    threads.append(threading.Thread(target=revoker))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    session = auth.sessions.get(start.session.id)
    assert session.state(time.time()) == "revoked"
    for got in [start, *issued]:
        with pytest.raises(TokenError):
            auth.sessions.check_access(got.access_token)
        with pytest.raises(TokenError):
            auth.sessions.refresh(got.refresh_token)


def test_fifty_concurrent_logins_make_fifty_sessions(auth: Auth) -> None:
    """No login is lost when many happen at once."""
    results = together(50, lambda _: auth.login("alice", PW, user_agent="load"))
    assert all(isinstance(r, Issued) for r in results), [
        r for r in results if not isinstance(r, Issued)
    ]
    ids = {r.session.id for r in results}
    assert len(ids) == 50
    active = auth.sessions.list(user_id=results[0].user.id)
    assert {s.id for s in active} == ids


def test_refresh_racing_password_change_leaves_nothing_alive(auth: Auth) -> None:
    """passwd ends sessions at once, even while they are being refreshed."""
    start = auth.login("alice", PW)
    results = together(
        11,
        lambda i: (
            auth.users.set_password("alice", "the new password")
            if i == 0
            else auth.sessions.refresh(start.refresh_token)
        ),
    )
    for r in results:
        if isinstance(r, Issued):
            with pytest.raises(RevokedToken):
                auth.sessions.check_access(r.access_token)
            with pytest.raises(TokenError):
                auth.sessions.refresh(r.refresh_token)
    assert auth.sessions.list(user_id=start.user.id) == []


# --- SQLite: two processes on one file ---------------------------------------------------------


def _refresh_in_process(home: str, db: str, token: str, start: Any, out: Any) -> None:
    store = SQLiteStore(db)
    auth = make_auth(store, Path(home), login_max_failures=1000)
    start.wait()
    results = together(10, lambda _: auth.sessions.refresh(token))
    out.put([r.refresh_token if isinstance(r, Issued) else f"error: {r}" for r in results])
    store.close()


def test_two_processes_refreshing_one_sqlite_file_rotate_once(tmp_path: Path) -> None:
    """The compare-and-set holds between processes sharing the file, not only between threads."""
    db = tmp_path / "shared.db"
    store = SQLiteStore(db)
    auth = make_auth(store, tmp_path, login_max_failures=1000)
    auth.users.create(username="alice", email="alice@example.com", password=PW)
    first = auth.login("alice", PW)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_refresh_in_process,
            args=(str(tmp_path), str(db), first.refresh_token, start, out),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    tokens = [t for _ in procs for t in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert len(tokens) == 20
    assert len(set(tokens)) == 1, set(tokens)
    assert auth.sessions.get(first.session.id).generation == 1
    store.close()
