"""`jwtctl sessions list | show | revoke | prune` through the CLI, on SQLite and MongoDB."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import create_user, jwtctl

SESSION_KEYS = {
    "id", "userId", "username", "createdAt", "lastUsedAt", "expiresAt", "absoluteExpiresAt",
    "revokedAt", "revokeReason", "ip", "userAgent", "generation", "state",
}  # fmt: skip


@pytest.fixture(autouse=True)
def users(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTCTL_DB", persistent_url)
    create_user("alice")
    create_user("bob")


def issue(user: str = "alice") -> dict[str, Any]:
    run = jwtctl("token", "issue", user, "--with-refresh", "--json")
    assert run.exit_code == 0, run.stderr
    doc: dict[str, Any] = run.json()
    return doc


def test_list_newest_first_with_the_documented_fields() -> None:
    first, second, bobs = issue(), issue(), issue("bob")
    listed = jwtctl("sessions", "list", "--json").json()
    assert [s["id"] for s in listed] == [bobs["sessionId"], second["sessionId"], first["sessionId"]]
    assert all(set(s) == SESSION_KEYS for s in listed)
    assert listed[0]["username"] == "bob" and listed[0]["state"] == "active"
    assert listed[0]["userAgent"] == "jwtctl" and listed[0]["generation"] == 0
    only = jwtctl("sessions", "list", "--user", "alice", "--json").json()
    assert [s["id"] for s in only] == [second["sessionId"], first["sessionId"]]
    text = jwtctl("sessions", "list")
    assert text.exit_code == 0 and "alice" in text.stdout and "STATE" in text.stdout
    assert jwtctl("sessions", "list", "--user", "nobody").exit_code == 4


def test_show_and_revoke_by_id() -> None:
    doc = issue()
    sid = doc["sessionId"]
    shown = jwtctl("sessions", "show", sid, "--json").json()
    assert set(shown) == SESSION_KEYS and shown["id"] == sid
    run = jwtctl("sessions", "revoke", sid, "--yes", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["revoked"] == 1
    after = jwtctl("sessions", "show", sid, "--json").json()
    assert (after["state"], after["revokeReason"]) == ("revoked", "admin")
    assert jwtctl("token", "verify", doc["accessToken"]).exit_code == 3
    assert jwtctl("token", "verify", doc["refreshToken"], "--type", "refresh").exit_code == 3
    assert jwtctl("sessions", "list", "--json").json() == []
    assert [s["id"] for s in jwtctl("sessions", "list", "--all", "--json").json()] == [sid]


def test_revoke_unknown_id_changes_nothing() -> None:
    keep = issue()["sessionId"]
    run = jwtctl("sessions", "revoke", keep, "6b0000000000000000000000", "--yes")
    assert run.exit_code == 4
    assert "no such session" in run.stderr
    assert jwtctl("sessions", "show", keep, "--json").json()["state"] == "active"


def test_revoke_user_dry_run_confirmation_and_older_than() -> None:
    a1, a2, b1 = issue(), issue(), issue("bob")
    plan = jwtctl("sessions", "revoke", "--user", "alice", "--dry-run", "--json")
    assert plan.exit_code == 0
    assert plan.json()["dryRun"] is True
    assert {s["id"] for s in plan.json()["sessions"]} == {a1["sessionId"], a2["sessionId"]}
    assert len(jwtctl("sessions", "list", "--json").json()) == 3  # nothing changed
    unconfirmed = jwtctl("sessions", "revoke", "--user", "alice")  # no answer on stdin: no
    assert unconfirmed.exit_code == 1 and "nothing was revoked" in unconfirmed.stderr
    none_old = jwtctl(
        "sessions", "revoke", "--user", "alice", "--older-than", "1h", "--yes", "--json"
    )
    assert none_old.json()["revoked"] == 0
    done = jwtctl("sessions", "revoke", "--user", "alice", input="y\n", env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.stderr
    assert "2 session(s) revoked" in done.stdout
    assert [s["id"] for s in jwtctl("sessions", "list", "--json").json()] == [b1["sessionId"]]


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "revoke"],
        ["sessions", "revoke", "x", "--user", "alice"],
        ["sessions", "revoke", "x", "--older-than", "1d"],
        ["sessions", "revoke", "--user", "alice", "--older-than", "soon"],
    ],
)
def test_revoke_usage_errors(argv: list[str]) -> None:
    assert jwtctl(*argv).exit_code == 2


def test_prune_reports_counts() -> None:
    doc = issue()
    jwtctl("sessions", "revoke", doc["sessionId"], "--yes")
    kept = jwtctl("sessions", "prune", "--json").json()
    assert kept == {"dryRun": False, "expired": 0, "revoked": 0, "removed": 0}
    dry = jwtctl("sessions", "prune", "--keep-revoked", "0s", "--dry-run", "--json").json()
    assert (dry["revoked"], dry["removed"]) == (1, 1)
    assert len(jwtctl("sessions", "list", "--all", "--json").json()) == 1
    done = jwtctl("sessions", "prune", "--keep-revoked", "0s", "--json").json()
    assert done["removed"] == 1
    assert jwtctl("sessions", "list", "--all", "--json").json() == []


def test_show_unknown_session_exits_4() -> None:
    run = jwtctl("sessions", "show", "6b0000000000000000000000")
    assert (
        run.exit_code == 4
        and run.stderr == "jwtctl: error: no such session: 6b0000000000000000000000\n"
    )
