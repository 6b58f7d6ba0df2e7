"""`--json` everywhere, with stable shapes: every command that takes --json is run with it, its
output must parse as one JSON document with the documented top-level keys (README, "JSON
output"), and a command with --json that is missing from this table fails the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import PUBLIC_USER_KEYS, create_user, jwtctl, leaf_commands

USER = PUBLIC_USER_KEYS
SESSION = {"id", "userId", "username", "createdAt", "lastUsedAt", "expiresAt", "absoluteExpiresAt",
           "revokedAt", "revokeReason", "ip", "userAgent", "generation", "state"}  # fmt: skip
KEY = {"kid", "alg", "use", "state", "created", "source"}
STORE = {"kind", "location", "reachable", "version", "counts", "indexes", "problem"}
IMPORT = {"dryRun", "created", "updated", "skipped", "failed", "errors"}


def setup() -> dict[str, str]:
    create_user("alice")
    create_user("bob")
    issued = jwtctl("token", "issue", "alice", "--with-refresh", "--json").json()
    old_key = jwtctl("keys", "list", "--json").json()[0]["kid"]
    jwtctl("keys", "rotate")
    return {"token": issued["accessToken"], "sid": issued["sessionId"], "old_kid": old_key}


# command -> (argv builder, "object" or "array", keys of the object or of each element)
SHAPES: dict[str, tuple[Callable[[dict[str, str]], list[str]], str, set[str]]] = {
    "user create": (lambda c: ["user", "create", "carol", "--email", "c@example.com", "--password-stdin"], "object", USER),
    "user list": (lambda c: ["user", "list"], "array", USER),
    "user show": (lambda c: ["user", "show", "alice"], "object", USER),
    "user passwd": (lambda c: ["user", "passwd", "bob", "--password-stdin", "--keep-sessions"], "object", USER | {"sessionsEnded"}),
    "user disable": (lambda c: ["user", "disable", "bob"], "object", USER | {"sessionsEnded"}),
    "user enable": (lambda c: ["user", "enable", "bob"], "object", USER | {"sessionsEnded"}),
    "user delete": (lambda c: ["user", "delete", "bob", "--yes"], "object", USER | {"sessionsEnded", "deleted"}),
    "user import": (lambda c: ["user", "import", c["import_file"]], "object", IMPORT),
    "token issue": (lambda c: ["token", "issue", "alice"], "object", {"accessToken", "sessionId", "expiresAt", "claims"}),
    "token decode": (lambda c: ["token", "decode", c["token"]], "object", {"header", "payload", "times", "status", "verified"}),
    "token verify": (lambda c: ["token", "verify", c["token"]], "object", {"valid", "header", "payload"}),
    "sessions list": (lambda c: ["sessions", "list"], "array", SESSION),
    "sessions show": (lambda c: ["sessions", "show", c["sid"]], "object", SESSION),
    "sessions revoke": (lambda c: ["sessions", "revoke", "--user", "alice", "--dry-run"], "object", {"dryRun", "revoked", "sessions"}),
    "sessions prune": (lambda c: ["sessions", "prune", "--dry-run"], "object", {"dryRun", "expired", "revoked", "removed"}),
    "keys generate": (lambda c: ["keys", "generate", "--alg", "HS256"], "object", KEY),
    "keys list": (lambda c: ["keys", "list"], "array", KEY),
    "keys rotate": (lambda c: ["keys", "rotate"], "object", KEY),
    "keys retire": (lambda c: ["keys", "retire", c["old_kid"]], "object", KEY),
    "keys jwks": (lambda c: ["keys", "jwks"], "object", {"keys"}),
    "db init": (lambda c: ["db", "init"], "object", STORE),
    "db status": (lambda c: ["db", "status"], "object", STORE),
    "config show": (lambda c: ["config", "show"], "object", {"configFile", "settings"}),
}  # fmt: skip
NO_JSON = {
    "serve": "a server, prints no data",
    "user export": "prints its own format (--format jsonl|csv)",
}


def commands_with_json() -> set[str]:
    return {
        path for path, cmd in leaf_commands().items() if any("--json" in p.opts for p in cmd.params)
    }


def test_every_command_is_either_in_the_table_or_explained() -> None:
    assert commands_with_json() == set(SHAPES)
    assert set(leaf_commands()) == set(SHAPES) | set(NO_JSON)


@pytest.mark.parametrize("command", sorted(SHAPES))
def test_json_output_has_the_documented_shape(command: str, tmp_path: Path) -> None:
    context = setup()
    import_file = tmp_path / "u.csv"
    import_file.write_text("username,email,password\nzed,z@example.com,correct horse battery\n")
    context["import_file"] = str(import_file)
    argv, kind, keys = SHAPES[command]
    run = jwtctl(*argv(context), "--json", input="another password\n")
    assert run.exit_code == 0, run.stderr
    doc = run.json()
    if kind == "array":
        assert isinstance(doc, list) and doc, doc
        for item in doc:
            assert set(item) == keys
    else:
        assert isinstance(doc, dict)
        assert set(doc) == keys
