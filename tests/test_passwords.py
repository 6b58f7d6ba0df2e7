"""Passwords and user-field validation: the 72-byte rule, NUL, non-strings, rehash on login,
and the dummy hash for unknown users."""

from __future__ import annotations

import time

import bcrypt
import pytest

from jwtctl import passwords, validation
from jwtctl.errors import AuthenticationFailed, InvalidInput
from jwtctl.store.memory import MemoryStore
from jwtctl.users import Users


def test_hash_uses_configured_cost_and_2b() -> None:
    h = passwords.hash_password("correct horse battery", 5)
    assert h.startswith("$2b$05$") and len(h) == 60
    assert passwords.check_password("correct horse battery", h, 5)
    assert not passwords.check_password("wrong password!", h, 5)


def test_password_over_72_bytes_is_refused_never_truncated() -> None:
    seventy_two = "é" * 36  # 72 bytes in UTF-8
    h = passwords.hash_password(seventy_two, 4)
    assert passwords.check_password(seventy_two, h, 4)
    with pytest.raises(InvalidInput, match="73 bytes in UTF-8; bcrypt uses at most 72"):
        passwords.hash_password(seventy_two + "x", 4)
    with pytest.raises(InvalidInput, match="bytes in UTF-8"):
        passwords.check_password("a" * 100, h, 4)  # at login too, never a crash


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("pass\x00word!", "NUL"),
        (None, "must be a string, not null"),
        (12345678, "must be a string, not a number"),
        ({"$ne": None}, "must be a string, not an object"),
        (["a"], "must be a string, not an array"),
        ("short", "at least 8 bytes"),
        ("\ud800bad-surrogate", "not valid Unicode"),
    ],
)
def test_bad_passwords_say_why(value: object, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as info:
        passwords.hash_password(value, 4)
    assert info.value.field == "password"


def test_unknown_user_costs_a_real_bcrypt_check() -> None:
    """The dummy-hash check runs bcrypt at the configured cost (not a fast 'no such user')."""
    passwords.check_password("warm up the cache", None, 8)
    real = passwords.hash_password("correct horse battery", 8)
    t0 = time.perf_counter()
    for _ in range(3):
        assert not passwords.check_password("wrong password!", real, 8)
    wrong = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        assert not passwords.check_password("wrong password!", None, 8)
    unknown = time.perf_counter() - t0
    # Not a timing assertion on speed: both are dominated by the same bcrypt work factor,
    # so neither can be an order of magnitude cheaper than the other.
    assert unknown > wrong / 10 and wrong > unknown / 10


def test_rehash_on_successful_login_when_cost_differs() -> None:
    store = MemoryStore()
    old = Users(store, rounds=4)
    user = old.create(username="alice", email="a@example.com", password="correct horse battery")
    assert user.password_hash.startswith("$2b$04$")
    new = Users(store, rounds=5)
    with pytest.raises(AuthenticationFailed):
        new.authenticate("alice", "wrong password")
    assert store.get_user(user.id).password_hash == user.password_hash  # type: ignore[union-attr]
    new.authenticate("alice", "correct horse battery")
    rehashed = store.get_user(user.id)
    assert rehashed is not None and rehashed.password_hash.startswith("$2b$05$")
    assert bcrypt.checkpw(b"correct horse battery", rehashed.password_hash.encode())


def test_authenticate_one_answer_for_unknown_disabled_and_wrong() -> None:
    store = MemoryStore()
    users = Users(store, rounds=4)
    users.create(username="alice", email="a@example.com", password="correct horse battery")
    users.create(username="bob", email="b@example.com", password="correct horse battery")
    users.set_disabled("bob", True)
    messages = set()
    for ident, pw in [
        ("alice", "wrong password"),
        ("nobody", "whatever pw"),
        ("bob", "correct horse battery"),
    ]:
        with pytest.raises(AuthenticationFailed) as info:
            users.authenticate(ident, pw)
        messages.add(info.value.message)
    assert messages == {"invalid username or password"}
    assert users.authenticate("A@Example.com ", "correct horse battery").username == "alice"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Alice ", "alice"),
        ("bob.smith_2-x", "bob.smith_2-x"),
        ("a" * 32, "a" * 32),
        ("0xe", "0xe"),
    ],
)
def test_usernames_normalise(value: str, expected: str) -> None:
    assert validation.username(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"), ("   ", "is empty"), ("ab", "at least 3"), ("a" * 33, "limit is 32"),
        ("_alice", "must start with"), ("al ice", "may only use"), ("ålice", "may only use"),
        ({"$gt": ""}, "must be a string"),
    ],
)  # fmt: skip
def test_bad_usernames(value: object, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        validation.username(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"), ("alice", "exactly one '@'"), ("a@b@c", "exactly one '@'"),
        ("@example.com", "needs a name"), ("alice@", "needs a name"), ("a b@example.com", "space"),
        ("alice\u200b@example.com", "invisible"), ("alice\u202e@example.com", "invisible"),
        ("a\x07@example.com", "invisible"), ("a@" + "x" * 260, "limit is 254"), ("a@b..c", "malformed"),
    ],
)  # fmt: skip
def test_bad_emails(value: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        validation.email(value)


def test_email_normalises() -> None:
    assert validation.email("  Alice@Example.COM ") == "alice@example.com"


def test_full_name_rules() -> None:
    assert validation.full_name("  Zoë O'Brien  ") == "Zoë O'Brien"
    with pytest.raises(InvalidInput, match="limit is 100"):
        validation.full_name("x" * 101)
    with pytest.raises(InvalidInput, match="control character"):
        validation.full_name("Eve\u202eevil")
    with pytest.raises(InvalidInput, match="control character"):
        validation.full_name("line\nbreak")
