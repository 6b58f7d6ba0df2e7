"""What only one store has to show: SQLite across processes on one file, its file mode and WAL;
MongoDB's timeouts and write concern."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import stat
import threading
from pathlib import Path

import pytest

from jwtctl.errors import UserExists
from jwtctl.store.mongo import MongoStore
from jwtctl.store.sqlite import SQLiteStore
from tests.test_store_contract import T0, make_session, make_user

Event = multiprocessing.synchronize.Event
Queue = multiprocessing.queues.Queue


def _insert_users(path: str, prefix: str, n: int, start: Event, out: Queue[int]) -> None:
    store = SQLiteStore(path)
    start.wait()
    done = 0
    for i in range(n):
        store.insert_user(make_user(f"{prefix}{i:03d}"))
        done += 1
    store.close()
    out.put(done)


def _rotate(path: str, sid: str, tag: str, start: Event, out: Queue[int]) -> None:
    store = SQLiteStore(path)
    start.wait()
    threads = []
    results: list[bool] = []

    def attempt(i: int) -> None:
        won = store.rotate_session(
            sid, jti_hash="h0", new_jti_hash=f"{tag}-{i}", now=T0 + 1, expires_at=T0 + 99
        )
        results.append(won is not None)

    for i in range(8):
        threads.append(threading.Thread(target=attempt, args=(i,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    out.put(sum(results))


def _run_processes(target: object, args_list: list[tuple[object, ...]]) -> list[int]:
    """Start one spawned process per args tuple, release them together, collect results."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, out)) for args in args_list]  # type: ignore[arg-type]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return sorted(results)


def test_sqlite_many_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(path).init()
    assert _run_processes(_insert_users, [(path, f"p{k}u", 25) for k in range(4)]) == [25] * 4
    store = SQLiteStore(path)
    assert store.count_users() == 100
    assert store._query("PRAGMA integrity_check")[0][0] == "ok"
    store.close()


def test_sqlite_rotation_across_processes_has_one_winner(tmp_path: Path) -> None:
    """The compare-and-set holds between processes, not only between threads."""
    path = str(tmp_path / "shared.db")
    store = SQLiteStore(path)
    user = make_user("alice")
    store.insert_user(user)
    session = make_session(user, jti="h0", created=T0)
    store.insert_session(session)
    assert _run_processes(_rotate, [(path, session.id, f"proc{k}") for k in range(2)]) == [0, 1]
    final = store.get_session(session.id)
    assert final is not None and final.generation == 1
    store.close()


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "auth.db"
    store = SQLiteStore(path)
    store.insert_user(make_user("alice"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"
    with pytest.raises(UserExists):
        store.insert_user(make_user("alice"))
    store.close()


def test_sqlite_not_a_database_is_store_unavailable(tmp_path: Path) -> None:
    from jwtctl.errors import StoreUnavailable

    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreUnavailable, match="not a database"):
        SQLiteStore(path).count_users()


def test_mongo_default_timeouts_and_write_concern() -> None:
    store = MongoStore("mongodb://127.0.0.1:9/")
    opts = store.client.options
    assert opts.server_selection_timeout == 5.0
    assert store.db.write_concern.document == {"w": "majority"}
    assert opts.retry_writes is True
    store.close()
    custom = MongoStore("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1500")
    assert custom.client.options.server_selection_timeout == 1.5
    custom.close()


def test_mongo_database_name_from_url_or_setting() -> None:
    for url, name in [("mongodb://127.0.0.1:9/auth", "auth"), ("mongodb://127.0.0.1:9/", "other")]:
        store = MongoStore(url, db_name="other")
        assert store.db.name == name
        store.close()


def test_mongo_location_hides_the_password() -> None:
    store = MongoStore("mongodb://admin:hunter2@127.0.0.1:9/auth")
    assert "hunter2" not in store.location and "127.0.0.1:9" in store.location
    store.close()
