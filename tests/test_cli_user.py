"""`jwtctl user …` through the CLI: normal use, and bad input that must change nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jwtctl.store import open_store
from tests.helpers import PUBLIC_USER_KEYS, Run, create_user, jwtctl

PW = "correct horse battery"
UNREACHABLE = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"


def snapshot(url: str) -> dict[str, Any]:
    store = open_store(url)
    try:
        return {
            "users": store.list_users(),
            "sessions": store.list_sessions(),
        }
    finally:
        store.close()


def one_error_line(run: Run) -> str:
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("jwtctl: error: "), run.stderr
    return lines[0]


@pytest.fixture
def url(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("JWTCTL_DB", persistent_url)
    return persistent_url


def test_create_list_show(url: str) -> None:
    run = create_user("alice", PW, "--full-name", "Alice Liddell", "--role", "admin", "--json")
    created = run.json()
    assert set(created) == PUBLIC_USER_KEYS
    assert (created["username"], created["roles"], created["disabled"]) == (
        "alice",
        ["admin"],
        False,
    )
    create_user("bob")
    listed = jwtctl("user", "list", "--json").json()
    assert [u["username"] for u in listed] == ["alice", "bob"]
    assert "password" not in str(listed)
    plain = jwtctl("user", "list")
    assert plain.exit_code == 0 and "alice@example.com" in plain.stdout and "│" not in plain.stdout
    for ref in ("alice", "ALICE@example.com", created["_id"]):
        assert jwtctl("user", "show", ref, "--json").json() == created


def test_list_search_and_limit(url: str) -> None:
    for name in ("alice", "bob", "carol"):
        create_user(name)
    assert [u["username"] for u in jwtctl("user", "list", "--search", "CAR", "--json").json()] == [
        "carol"
    ]
    limited = jwtctl("user", "list", "--limit", "2", "--json")
    assert [u["username"] for u in limited.json()] == ["alice", "bob"]
    assert "showing 2 of 3 users" in limited.stderr
    assert len(jwtctl("user", "list", "--limit", "0", "--json").json()) == 3


def test_passwd_disable_enable_delete(url: str) -> None:
    create_user("alice")
    run = jwtctl(
        "user", "passwd", "alice", "--password-stdin", "--json", input="new password 123\n"
    )
    assert run.exit_code == 0, run.stderr
    assert run.json()["sessionsEnded"] == 0
    store = open_store(url)
    user = store.find_user(username="alice")
    assert user is not None and user.tokens_valid_after is not None
    store.close()
    assert jwtctl("user", "disable", "alice", "--json").json()["disabled"] is True
    assert jwtctl("user", "show", "alice", "--json").json()["disabled"] is True
    assert jwtctl("user", "enable", "alice", "--json").json()["disabled"] is False
    refused = jwtctl("user", "delete", "alice", input="n\n")
    assert refused.exit_code == 1 and "nothing was deleted" in refused.stderr
    assert jwtctl("user", "show", "alice").exit_code == 0
    confirmed = jwtctl("user", "delete", "alice", input="y\n")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert jwtctl("user", "show", "alice").exit_code == 4


def test_delete_without_confirmation_input_deletes_nothing(url: str) -> None:
    create_user("alice")
    run = jwtctl("user", "delete", "alice")  # stdin empty: no answer is no
    assert run.exit_code == 1
    assert jwtctl("user", "show", "alice").exit_code == 0
    assert jwtctl("user", "delete", "alice", "--yes").exit_code == 0


def test_password_never_from_an_argument_or_a_silent_default(url: str) -> None:
    run = jwtctl("user", "create", "alice", "--email", "a@example.com")  # stdin is not a terminal
    assert run.exit_code == 2
    assert "--password-stdin" in run.stderr
    assert (
        jwtctl("user", "create", "alice", "--email", "a@example.com", "--password", "x").exit_code
        == 2
    )


def test_password_stdin_takes_one_line_exactly(url: str) -> None:
    run = jwtctl("user", "create", "alice", "--email", "a@example.com", "--password-stdin",
                 input="  spaces kept  \r\nsecond line\n")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    store = open_store(url)
    from jwtctl.users import Users

    assert Users(store, rounds=4).authenticate("alice", "  spaces kept  ").username == "alice"
    store.close()


# --- bad input: one clear line, the documented exit code, and the store unchanged ------------------

TOO_LONG = "x" * 73
BAD_CASES = [
    # (argv, stdin, exit code, text in the message)
    (["user", "create", "carol", "--email", "not-an-email", "--password-stdin"], PW, 2, "invalid email"),
    (["user", "create", "", "--email", "c@example.com", "--password-stdin"], PW, 2, "invalid username: is empty"),
    (["user", "create", "c" * 33, "--email", "c@example.com", "--password-stdin"], PW, 2, "limit is 32"),
    (["user", "create", "carol", "--email", "c@example.com", "--password-stdin"], TOO_LONG, 2, "73 bytes"),
    (["user", "create", "alice", "--email", "c@example.com", "--password-stdin"], PW, 5, "username already exists"),
    (["user", "create", "carol", "--email", "ALICE@example.com", "--password-stdin"], PW, 5, "email already exists"),
    (["user", "show", "nobody"], None, 4, "no such user: nobody"),
    (["user", "show", ""], None, 2, "invalid user: is empty"),
    (["user", "show", "c" * 40], None, 4, "no such user"),
    (["user", "passwd", "nobody", "--password-stdin"], PW, 4, "no such user"),
    (["user", "passwd", "alice", "--password-stdin"], TOO_LONG, 2, "73 bytes"),
    (["user", "passwd", "alice", "--password-stdin"], None, 2, "nothing on standard input"),
    (["user", "passwd", "alice", "--password-stdin"], "", 2, "at least 8 bytes"),
    (["user", "disable", "nobody"], None, 4, "no such user"),
    (["user", "enable", "nobody"], None, 4, "no such user"),
    (["user", "delete", "nobody", "--yes"], None, 4, "no such user"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "stdin", "code", "text"), BAD_CASES)
def test_bad_input_changes_nothing(
    url: str, argv: list[str], stdin: str | None, code: int, text: str
) -> None:
    create_user("alice")
    before = snapshot(url)
    run = jwtctl(*argv, input=None if stdin is None else stdin + "\n")
    assert run.exit_code == code, run.stderr
    assert text in one_error_line(run)
    assert snapshot(url) == before


USER_COMMANDS = [
    (["user", "create", "carol", "--email", "c@example.com", "--password-stdin"], PW),
    (["user", "list"], None),
    (["user", "show", "alice"], None),
    (["user", "passwd", "alice", "--password-stdin"], PW),
    (["user", "disable", "alice"], None),
    (["user", "enable", "alice"], None),
    (["user", "delete", "alice", "--yes"], None),
]


@pytest.mark.parametrize(("argv", "stdin"), USER_COMMANDS)
def test_unreachable_store_exits_6_naming_the_host(argv: list[str], stdin: str | None) -> None:
    run = jwtctl("--db", UNREACHABLE, *argv, input=None if stdin is None else stdin + "\n")
    assert run.exit_code == 6, run.stderr
    line = one_error_line(run)
    assert "127.0.0.1:9" in line and "store unavailable" in line


@pytest.mark.parametrize(("argv", "stdin"), USER_COMMANDS)
def test_read_only_sqlite_refuses_writes_and_changes_nothing(
    tmp_path: Path, argv: list[str], stdin: str | None
) -> None:
    path = tmp_path / "ro.db"
    rw = f"sqlite:///{str(path).lstrip('/')}"
    assert jwtctl("--db", rw, "user", "create", "alice", "--email", "a@example.com",
                  "--password-stdin", input=PW + "\n").exit_code == 0  # fmt: skip
    before = snapshot(rw)
    run = jwtctl("--db", rw + "?mode=ro", *argv, input=None if stdin is None else stdin + "\n")
    if argv[1] in ("list", "show"):
        assert run.exit_code == 0, run.stderr
    else:
        assert run.exit_code == 6, run.stderr
        assert "read-only" in one_error_line(run)
    assert snapshot(rw) == before


def test_read_only_file_permissions(tmp_path: Path) -> None:
    """A database file the user may not write (as root, permissions do not apply: mode=ro
    above covers that case)."""
    path = tmp_path / "perm.db"
    rw = f"sqlite:///{str(path).lstrip('/')}"
    create = ["user", "create", "alice", "--email", "a@example.com", "--password-stdin"]
    assert jwtctl("--db", rw, *create, input=PW + "\n").exit_code == 0
    before = snapshot(rw)
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        run = jwtctl("--db", rw, "user", "disable", "alice")
        expected = 0 if os.geteuid() == 0 else 6
        assert run.exit_code == expected, run.stderr
    finally:
        tmp_path.chmod(0o755)
        path.chmod(0o644)
    if os.geteuid() != 0:
        assert snapshot(rw) == before
