"""Sessions through the core, on every store: login, rotation, the grace window, reuse
detection, revocation and expiry. Time is stepped with an injectable clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jwtctl.auth import Auth
from jwtctl.config import default_settings
from jwtctl.errors import (
    AuthenticationFailed,
    ExpiredToken,
    InvalidInput,
    RefreshReuse,
    RevokedToken,
    TooManyAttempts,
)
from jwtctl.keys import open_keyring
from jwtctl.sessions import Issued
from jwtctl.store import Store
from jwtctl.tokens import parse

PW = "correct horse battery"


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_auth(store: Store, tmp_path: Path, clock: Any = time.time, **settings: Any) -> Auth:
    values: dict[str, Any] = {"bcrypt_rounds": 4, "login_max_failures": 3}
    values.update(settings)
    s = default_settings(home=tmp_path, **values)
    return Auth(s, store, open_keyring(s), clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def auth(store: Store, tmp_path: Path, clock: Clock) -> Auth:
    a = make_auth(
        store, tmp_path, clock, refresh_ttl=3600, session_max_age=4 * 3600, refresh_grace=10
    )
    a.users.create(username="alice", email="alice@example.com", password=PW)
    a.users.create(username="bob", email="bob@example.com", password=PW)
    return a


def payload(token: str) -> dict[str, Any]:
    return parse(token).payload


def login(auth: Auth, name: str = "alice", **kw: Any) -> Issued:
    return auth.login(name, PW, **kw)


def test_login_records_ip_and_agent_and_tokens_work(auth: Auth) -> None:
    issued = login(auth, ip="203.0.113.9", user_agent="Firefox")
    assert (issued.session.ip, issued.session.user_agent) == ("203.0.113.9", "Firefox")
    stored = auth.store.get_session(issued.session.id)
    assert stored is not None and stored.state(auth.clock()) == "active"
    access = auth.sessions.check_access(issued.access_token)
    assert access.user.username == "alice" and access.session.id == issued.session.id
    assert payload(issued.refresh_token)["sid"] == issued.session.id
    assert parse(issued.refresh_token).header["typ"] == "refresh+jwt"


def test_store_keeps_only_a_hash_of_the_refresh_token(auth: Auth) -> None:
    issued = login(auth)
    stored = auth.store.get_session(issued.session.id)
    assert stored is not None
    jti = payload(issued.refresh_token)["jti"]
    assert jti not in repr(stored) and issued.refresh_token not in repr(stored)
    assert len(stored.jti_hash) == 64


def test_rotation_slides_idle_expiry_but_never_the_absolute_one(auth: Auth, clock: Clock) -> None:
    first = login(auth)
    absolute = first.session.absolute_expires_at
    token = first.refresh_token
    for i in range(1, 5):
        clock.advance(3000)  # inside the 1 h idle window each time
        nxt = auth.sessions.refresh(token)
        assert nxt.session.generation == i
        assert nxt.session.absolute_expires_at == absolute
        assert nxt.session.expires_at <= absolute
        assert payload(nxt.refresh_token)["exp"] == int(nxt.session.expires_at)
        token = nxt.refresh_token
    # after 4 x 3000 s the idle expiry (+1 h) would pass the 4 h cap, so it is clipped to it
    assert int(absolute) == payload(token)["exp"]
    clock.advance(absolute - clock.now + 1)
    with pytest.raises(ExpiredToken):
        auth.sessions.refresh(token)


def test_idle_expiry_is_enforced_on_read(auth: Auth, clock: Clock) -> None:
    issued = login(auth)
    clock.advance(3601)
    with pytest.raises((ExpiredToken, RevokedToken)):
        auth.sessions.refresh(issued.refresh_token)
    assert auth.sessions.list(include_ended=False) == []
    assert auth.sessions.get(issued.session.id).state(clock()) == "expired"


def test_retry_within_grace_returns_the_same_successor(auth: Auth, clock: Clock) -> None:
    first = login(auth)
    second = auth.sessions.refresh(first.refresh_token)
    clock.advance(9)
    retry = auth.sessions.refresh(first.refresh_token)
    assert retry.retried and not second.retried
    assert retry.refresh_token == second.refresh_token  # byte for byte
    assert payload(retry.refresh_token)["jti"] == payload(second.refresh_token)["jti"]
    assert payload(retry.refresh_token)["sid"] == first.session.id
    assert retry.access_token != second.access_token  # a fresh access token
    assert auth.sessions.get(first.session.id).generation == 1  # no branch
    third = auth.sessions.refresh(second.refresh_token)  # the chain goes on from the successor
    assert third.session.generation == 2


def test_reuse_after_grace_revokes_only_that_session(auth: Auth, clock: Clock) -> None:
    stolen = login(auth, ip="198.51.100.1")
    sibling = login(auth)
    bobs = login(auth, "bob")
    successor = auth.sessions.refresh(stolen.refresh_token)
    clock.advance(11)
    with pytest.raises(RefreshReuse) as info:
        auth.sessions.refresh(stolen.refresh_token, ip="192.0.2.66", user_agent="curl/8")
    assert info.value.session_id == stolen.session.id
    ended = auth.sessions.get(stolen.session.id)
    assert (ended.revoke_reason, ended.revoked_ip, ended.revoked_user_agent) == (
        "reuse",
        "192.0.2.66",
        "curl/8",
    )
    assert ended.revoked_at == pytest.approx(clock(), abs=0.002)
    with pytest.raises(RevokedToken):
        auth.sessions.refresh(successor.refresh_token)  # the successor dies with it
    with pytest.raises(RevokedToken):
        auth.sessions.check_access(successor.access_token)
    assert auth.sessions.check_access(sibling.access_token).session.id == sibling.session.id
    assert auth.sessions.refresh(bobs.refresh_token).session.generation == 1


def test_replay_of_an_older_token_is_reuse_even_within_grace(auth: Auth) -> None:
    first = login(auth)
    second = auth.sessions.refresh(first.refresh_token)
    auth.sessions.refresh(second.refresh_token)
    with pytest.raises(RefreshReuse):
        auth.sessions.refresh(first.refresh_token)


def test_logout_and_logout_all(auth: Auth) -> None:
    one, two, three = login(auth), login(auth), login(auth, "bob")
    assert auth.sessions.logout(one.session.id)
    assert not auth.sessions.logout(one.session.id)
    with pytest.raises(RevokedToken, match="revoked"):
        auth.sessions.refresh(one.refresh_token)
    with pytest.raises(RevokedToken):
        auth.sessions.check_access(one.access_token)
    assert auth.sessions.logout_all(two.user.id) == [two.session.id]
    with pytest.raises(RevokedToken):
        auth.sessions.check_access(two.access_token)
    assert auth.sessions.check_access(three.access_token)


@pytest.mark.parametrize("change", ["passwd", "disable", "delete"])
def test_user_changes_end_sessions_and_live_access_tokens(auth: Auth, change: str) -> None:
    issued = login(auth)
    if change == "passwd":
        assert auth.users.set_password("alice", "a brand new password").sessions_ended == 1
    elif change == "disable":
        assert auth.users.set_disabled("alice", True).sessions_ended == 1
    else:
        assert auth.users.delete("alice").sessions_ended == 1
    with pytest.raises(RevokedToken):
        auth.sessions.check_access(issued.access_token)
    with pytest.raises(RevokedToken):
        auth.sessions.refresh(issued.refresh_token)


def test_tokens_valid_after_kills_access_tokens_even_with_kept_sessions(
    auth: Auth, clock: Clock
) -> None:
    """A password change moves tokensValidAfter: an access token issued before it is refused even
    if its session were still active (the session check is the first line, this is the second)."""
    issued = login(auth)
    clock.advance(2)
    user = auth.users.get("alice")
    auth.store.update_user(user.id, {"tokens_valid_after": clock()})
    with pytest.raises(RevokedToken, match="password change or disable"):
        auth.sessions.check_access(issued.access_token)


def test_login_rate_limit_per_account(auth: Auth, clock: Clock) -> None:
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.login("alice", "wrong password")
    with pytest.raises(TooManyAttempts) as info:
        auth.login("alice", PW)  # even the right password
    assert 1 <= info.value.retry_after <= 900
    with pytest.raises(TooManyAttempts):
        auth.login("ALICE@example.com", PW)  # the account, whatever name is typed
    assert login(auth, "bob")  # other accounts unaffected
    clock.advance(901)
    assert login(auth)


def test_unknown_users_are_counted_the_same_way(auth: Auth) -> None:
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.login("ghost", "whatever pw")
    with pytest.raises(TooManyAttempts):
        auth.login("ghost", "whatever pw")


def test_success_clears_the_failure_count(auth: Auth) -> None:
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            auth.login("alice", "wrong password")
    login(auth)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            auth.login("alice", "wrong password")
    assert login(auth)


def test_invalid_password_input_is_refused_before_counting(auth: Auth) -> None:
    for bad in ("x" * 73, {"$ne": None}, None):
        with pytest.raises(InvalidInput):
            auth.login("alice", bad)
    assert (
        auth.store.login_failures(
            "user:" + auth.users.get("alice").id, now=time.time(), window=900
        )[0]
        == 0
    )


def test_disabled_user_cannot_log_in_or_refresh(auth: Auth) -> None:
    issued = login(auth)
    auth.users.set_disabled("alice", True)
    with pytest.raises(AuthenticationFailed):
        login(auth)
    with pytest.raises(RevokedToken):
        auth.sessions.refresh(issued.refresh_token)


def test_prune_and_list(auth: Auth, clock: Clock) -> None:
    a, b = login(auth), login(auth)
    auth.sessions.logout(a.session.id)
    assert [s.id for s in auth.sessions.list()] == [b.session.id]
    assert {s.id for s in auth.sessions.list(include_ended=True)} == {a.session.id, b.session.id}
    assert auth.sessions.prune(dry_run=True) == (0, 0)
    clock.advance(120)
    assert auth.sessions.prune() == (0, 0)  # a was revoked only 2 minutes ago: kept 7 days
    assert auth.sessions.prune(keep_revoked=60, dry_run=True) == (0, 1)
    assert auth.sessions.prune(keep_revoked=60) == (0, 1)
    clock.advance(3601)  # b expires (idle)
    assert auth.sessions.prune() == (1, 0)
    assert auth.sessions.list(include_ended=True) == []


def test_tokens_refresh_immediately_just_before_a_second_boundary(
    store: Store, tmp_path: Path
) -> None:
    """Regression: stored times were rounded to the millisecond, so at hh:mm:ss.9996 a token's
    iat came out one second in the future and an immediate refresh was refused."""
    clock = Clock(float(int(time.time())) + 0.9996)
    auth = make_auth(store, tmp_path, clock)
    auth.users.create(username="alice", email="alice@example.com", password=PW)
    issued = auth.login("alice", PW)
    assert parse(issued.refresh_token).payload["iat"] <= clock.now
    nxt = auth.sessions.refresh(issued.refresh_token)
    assert auth.sessions.refresh(nxt.refresh_token).session.generation == 2
    assert auth.sessions.check_access(nxt.access_token)


@pytest.mark.parametrize("value", [99.999, 1_795_788_377.9996, 0.001, 1.0, 1_795_788_378.0])
def test_ms_truncates_and_is_idempotent(value: float) -> None:
    from jwtctl.timeutil import ms

    assert ms(value) <= value + 1e-9
    assert ms(ms(value)) == ms(value)
