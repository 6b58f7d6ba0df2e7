"""The store contract: every test here runs unchanged against memory, SQLite and MongoDB
(the ``store`` fixture is parametrised over the three)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jwtctl.errors import UserExists
from jwtctl.models import Session, User, new_id
from jwtctl.store import Store

T0 = 1_800_000_000.0


def make_user(name: str, **kw: object) -> User:
    values: dict[str, object] = {
        "id": new_id(),
        "username": name,
        "email": f"{name}@example.com",
        "password_hash": "$2b$04$" + "a" * 53,
        "full_name": name.title(),
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return User(**values)  # type: ignore[arg-type]


def make_session(user: User, *, created: float = T0, jti: str = "h0", **kw: object) -> Session:
    values: dict[str, object] = {
        "id": new_id(),
        "user_id": user.id,
        "jti_hash": jti,
        "created_at": created,
        "last_used_at": created,
        "expires_at": created + 3600,
        "absolute_expires_at": created + 86400,
        "ip": "127.0.0.1",
        "user_agent": "pytest",
    }
    values.update(kw)
    return Session(**values)  # type: ignore[arg-type]


# --- users ---------------------------------------------------------------------------------------


def test_insert_and_read_back_every_field(store: Store) -> None:
    user = make_user("alice", roles=("admin", "ops"), tokens_valid_after=T0 + 1.5, disabled=True)
    store.insert_user(user)
    assert store.get_user(user.id) == user
    assert store.find_user(username="alice") == user
    assert store.find_user(email="alice@example.com") == user
    assert store.find_user(username="bob") is None
    assert store.get_user(new_id()) is None


@pytest.mark.parametrize("field", ["username", "email"])
def test_duplicate_user_names_the_field(store: Store, field: str) -> None:
    store.insert_user(make_user("alice"))
    clash = make_user("bob", **{field: "alice" if field == "username" else "alice@example.com"})
    with pytest.raises(UserExists) as info:
        store.insert_user(clash)
    assert info.value.field == field
    assert store.count_users() == 1


def test_list_is_ordered_searchable_and_pages(store: Store) -> None:
    for name in ["carol", "alice", "bob", "dave"]:
        store.insert_user(make_user(name, full_name=f"{name.title()} Example"))
    assert [u.username for u in store.list_users()] == ["alice", "bob", "carol", "dave"]
    assert [u.username for u in store.list_users(limit=2)] == ["alice", "bob"]
    assert [u.username for u in store.list_users(limit=2, offset=2)] == ["carol", "dave"]
    assert [u.username for u in store.list_users(search="ARO")] == ["carol"]
    assert store.count_users(search="example") == 4
    assert store.count_users() == 4


def test_search_is_literal_never_a_pattern(store: Store) -> None:
    store.insert_user(make_user("alice"))
    store.insert_user(make_user("a.b"))
    for needle in [".*", "%", "_", "^a", "a|b", "[a-z]"]:
        expected = [u.username for u in store.list_users() if needle in u.username + u.email]
        assert [u.username for u in store.list_users(search=needle)] == expected, needle
    assert [u.username for u in store.list_users(search=".")] == ["a.b", "alice"]


def test_update_user_and_compare_and_set_on_password(store: Store) -> None:
    user = make_user("alice")
    store.insert_user(user)
    updated = store.update_user(user.id, {"disabled": True, "updated_at": T0 + 5})
    assert updated is not None and updated.disabled and updated.updated_at == T0 + 5
    assert store.update_user(user.id, {"password_hash": "x"}, if_password="not-the-hash") is None
    assert store.get_user(user.id) == updated
    changed = store.update_user(user.id, {"password_hash": "new"}, if_password=user.password_hash)
    assert changed is not None and changed.password_hash == "new"
    assert store.update_user(new_id(), {"disabled": True}) is None


def test_delete_user_takes_their_sessions_only(store: Store) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    store.insert_user(alice)
    store.insert_user(bob)
    for _ in range(3):
        store.insert_session(make_session(alice))
    keep = make_session(bob)
    store.insert_session(keep)
    assert store.delete_user(alice.id) == 3
    assert store.get_user(alice.id) is None
    assert store.list_sessions() == [keep]
    assert store.delete_user(alice.id) is None


# --- sessions ------------------------------------------------------------------------------------


def test_rotate_is_a_compare_and_set(store: Store) -> None:
    user = make_user("alice")
    store.insert_user(user)
    s = make_session(user, jti="h0")
    store.insert_session(s)
    now = T0 + 10
    rotated = store.rotate_session(
        s.id, jti_hash="h0", new_jti_hash="h1", now=now, expires_at=now + 3600
    )
    assert rotated is not None
    assert (rotated.jti_hash, rotated.prev_jti_hash, rotated.generation) == ("h1", "h0", 1)
    assert (rotated.rotated_at, rotated.last_used_at, rotated.expires_at) == (now, now, now + 3600)
    assert rotated.absolute_expires_at == s.absolute_expires_at
    # the old hash no longer matches
    assert (
        store.rotate_session(s.id, jti_hash="h0", new_jti_hash="h2", now=now, expires_at=now)
        is None
    )
    assert store.get_session(s.id) == rotated


@pytest.mark.parametrize("case", ["revoked", "idle-expired", "absolute-expired", "missing"])
def test_rotate_refuses_ended_sessions(store: Store, case: str) -> None:
    user = make_user("alice")
    store.insert_user(user)
    s = make_session(user)
    store.insert_session(s)
    now = T0 + 10
    if case == "revoked":
        store.revoke_session(s.id, now=now, reason="logout")
    elif case == "idle-expired":
        now = s.expires_at
    elif case == "absolute-expired":
        store.insert_session(s2 := make_session(user, absolute_expires_at=T0 + 5))
        s = s2
    sid = new_id() if case == "missing" else s.id
    assert (
        store.rotate_session(sid, jti_hash="h0", new_jti_hash="h1", now=now, expires_at=now + 60)
        is None
    )


def test_revoke_once_and_record_where_from(store: Store) -> None:
    user = make_user("alice")
    store.insert_user(user)
    s = make_session(user)
    store.insert_session(s)
    revoked = store.revoke_session(
        s.id, now=T0 + 1, reason="reuse", ip="10.0.0.9", user_agent="curl"
    )
    assert revoked is not None
    assert (revoked.revoked_at, revoked.revoke_reason) == (T0 + 1, "reuse")
    assert (revoked.revoked_ip, revoked.revoked_user_agent) == ("10.0.0.9", "curl")
    assert revoked.state(T0 + 2) == "revoked"
    assert store.revoke_session(s.id, now=T0 + 2, reason="logout") is None
    assert store.get_session(s.id) == revoked
    assert store.revoke_session(new_id(), now=T0, reason="logout") is None


def test_revoke_user_sessions_leaves_others(store: Store) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    store.insert_user(alice)
    store.insert_user(bob)
    old = make_session(alice, created=T0)
    new = make_session(alice, created=T0 + 100)
    other = make_session(bob)
    for s in (old, new, other):
        store.insert_session(s)
    assert store.revoke_user_sessions(
        alice.id, now=T0 + 200, reason="admin", created_before=T0 + 50
    ) == [old.id]
    assert sorted(store.revoke_user_sessions(alice.id, now=T0 + 201, reason="admin")) == [new.id]
    assert store.revoke_user_sessions(alice.id, now=T0 + 202, reason="admin") == []
    bob_session = store.get_session(other.id)
    assert bob_session is not None and bob_session.revoked_at is None


def test_list_sessions_newest_first_with_filters(store: Store) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    store.insert_user(alice)
    store.insert_user(bob)
    a1 = make_session(alice, created=T0)
    a2 = make_session(alice, created=T0 + 10)
    a3 = make_session(alice, created=T0 + 20)
    b1 = make_session(bob, created=T0 + 5)
    for s in (a1, a2, a3, b1):
        store.insert_session(s)
    store.revoke_session(a2.id, now=T0 + 30, reason="logout")
    assert [s.id for s in store.list_sessions()] == [a3.id, a2.id, b1.id, a1.id]
    assert [s.id for s in store.list_sessions(user_id=alice.id)] == [a3.id, a2.id, a1.id]
    assert [s.id for s in store.list_sessions(user_id=alice.id, active_at=T0 + 31)] == [
        a3.id,
        a1.id,
    ]
    assert [s.id for s in store.list_sessions(limit=1)] == [a3.id]
    # idle expiry applies on read, not only on cleanup
    assert [s.id for s in store.list_sessions(active_at=a1.expires_at)] == [a3.id, b1.id]
    assert store.count_sessions() == 4
    assert store.count_sessions(active_at=T0 + 31) == 3


def test_prune_removes_expired_and_long_revoked(store: Store) -> None:
    user = make_user("alice")
    store.insert_user(user)
    expired = make_session(user, created=T0 - 7200)  # idle expiry at T0 - 3600
    recent_revoked = make_session(user, created=T0)
    old_revoked = make_session(user, created=T0 - 100)
    live = make_session(user, created=T0)
    for s in (expired, recent_revoked, old_revoked, live):
        store.insert_session(s)
    store.revoke_session(old_revoked.id, now=T0 - 50, reason="logout")
    store.revoke_session(recent_revoked.id, now=T0 + 5, reason="logout")
    assert store.prune_sessions(now=T0 + 10, revoked_before=T0, dry_run=True) == (1, 1)
    assert len(store.list_sessions()) == 4
    assert store.prune_sessions(now=T0 + 10, revoked_before=T0) == (1, 1)
    assert sorted(s.id for s in store.list_sessions()) == sorted([recent_revoked.id, live.id])
    assert store.prune_sessions(now=T0 + 10, revoked_before=T0) == (0, 0)


# --- login failures ------------------------------------------------------------------------------


def test_login_failures_count_in_a_fixed_window(store: Store) -> None:
    assert store.login_failures("k", now=T0, window=900) == (0, T0)
    assert store.add_login_failure("k", now=T0, window=900) == (1, T0)
    assert store.add_login_failure("k", now=T0 + 10, window=900) == (2, T0)
    assert store.login_failures("k", now=T0 + 20, window=900) == (2, T0)
    assert store.login_failures("other", now=T0 + 20, window=900) == (0, T0 + 20)
    # after the window a new one starts at the next failure
    assert store.login_failures("k", now=T0 + 900, window=900) == (0, T0 + 900)
    assert store.add_login_failure("k", now=T0 + 901, window=900) == (1, T0 + 901)
    store.clear_login_failures("k")
    assert store.login_failures("k", now=T0 + 902, window=900) == (0, T0 + 902)


# --- concurrency (real threads against the real store) -------------------------------------------


def test_concurrent_rotations_have_exactly_one_winner(store: Store) -> None:
    user = make_user("alice")
    store.insert_user(user)
    s = make_session(user)
    store.insert_session(s)
    barrier = threading.Barrier(20)

    def attempt(i: int) -> bool:
        barrier.wait()
        return (
            store.rotate_session(
                s.id, jti_hash="h0", new_jti_hash=f"n{i}", now=T0 + 1, expires_at=T0 + 99
            )
            is not None
        )

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert results.count(True) == 1
    final = store.get_session(s.id)
    assert final is not None and final.generation == 1
    assert final.jti_hash == f"n{results.index(True)}"


def test_concurrent_duplicate_inserts_keep_exactly_one(store: Store) -> None:
    barrier = threading.Barrier(10)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            store.insert_user(make_user("alice", email=f"a{i}@example.com"))
            return "ok"
        except UserExists as exc:
            return exc.field

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(attempt, range(10)))
    assert sorted(results) == ["ok"] + ["username"] * 9
    assert store.count_users() == 1


def test_concurrent_failures_are_all_counted(store: Store) -> None:
    barrier = threading.Barrier(16)

    def attempt(_: int) -> int:
        barrier.wait()
        return store.add_login_failure("k", now=T0, window=900)[0]

    with ThreadPoolExecutor(16) as pool:
        counts = sorted(pool.map(attempt, range(16)))
    assert counts == list(range(1, 17))
