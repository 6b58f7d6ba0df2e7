"""Interoperability with the Express design's own libraries (node `jsonwebtoken` and bcrypt,
via bcryptjs which writes and reads the same hashes). Needs node and tests/interop/node_modules
(`scripts/test` runs `npm ci` there); without them these tests fail rather than skip."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jwtctl.config import resolve
from jwtctl.store import open_store
from jwtctl.users import Users
from tests.helpers import create_user, jwtctl

INTEROP = Path(__file__).resolve().parent / "interop"
ACCESS = "express-access-secret-which-is-long-enough-0123"
REFRESH = "express-refresh-secret-which-is-long-enough-456"


def node(*args: str, secret: str = ACCESS) -> dict[str, Any]:
    exe = shutil.which("node")
    if exe is None or not (INTEROP / "node_modules" / "jsonwebtoken").is_dir():
        pytest.fail(
            "node and tests/interop/node_modules are needed: run scripts/test (npm ci)",
            pytrace=False,
        )
    result = subprocess.run(
        [exe, str(INTEROP / "express.js"), *args],
        capture_output=True, text=True, timeout=60, env={"ACCESS_TOKEN_SECRET": secret, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.fixture(autouse=True)
def express_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ACCESS)
    monkeypatch.setenv("REFRESH_TOKEN_SECRET", REFRESH)


def test_jsonwebtoken_accepts_jwtctl_access_tokens() -> None:
    user = create_user("alice", "correct horse battery", "--json").json()
    token = jwtctl("token", "issue", "alice").stdout.strip()
    verified = node("verify", token)
    assert "error" not in verified, verified
    assert verified["payload"]["_id"] == user["_id"]
    assert verified["payload"]["username"] == "alice"
    wrong = node("verify", token, secret=ACCESS + "x")
    assert wrong == {"error": "invalid signature"}


def test_jwtctl_verifies_tokens_signed_the_express_way() -> None:
    payload = {
        "_id": "65f1c0ffee0123456789abcd",
        "email": "bob@example.com",
        "username": "bob",
        "fullName": "Bob",
    }
    token = node("sign", json.dumps(payload), "1d")["token"]
    strict = jwtctl("token", "verify", token, "--secret-env", "ACCESS_TOKEN_SECRET")
    assert strict.exit_code == 3  # the design's tokens carry no iss/aud
    run = jwtctl(
        "token",
        "verify",
        token,
        "--secret-env",
        "ACCESS_TOKEN_SECRET",
        "--no-iss",
        "--no-aud",
        "--json",
    )
    assert run.exit_code == 0, run.stderr
    assert run.json()["payload"]["_id"] == payload["_id"]
    expired = node("sign", json.dumps(payload), "-10s")["token"]
    late = jwtctl(
        "token", "verify", expired, "--secret-env", "ACCESS_TOKEN_SECRET", "--no-iss", "--no-aud"
    )
    assert late.exit_code == 3 and "expired" in late.stderr


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_jsonwebtoken_verifies_asymmetric_tokens_with_the_published_jwk(
    alg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWTCTL_ALG", alg)
    create_user("alice")
    token = jwtctl("token", "issue", "alice").stdout.strip()
    jwks = json.loads(jwtctl("keys", "jwks").stdout)
    assert len(jwks["keys"]) == 1
    verified = node("verify-jwk", token, json.dumps(jwks["keys"][0]), alg)
    assert "error" not in verified, verified
    assert verified["payload"]["username"] == "alice"


def test_passwords_work_on_both_sides() -> None:
    created = create_user("carol", "a shared password")
    assert created.exit_code == 0
    store = open_store(resolve().db)
    user = store.find_user(username="carol")
    assert user is not None
    assert node("bcrypt-compare", "a shared password", user.password_hash) == {"match": True}
    assert node("bcrypt-compare", "another password", user.password_hash) == {"match": False}
    express_hash = node("bcrypt-hash", "made by express")["hash"]
    assert express_hash.startswith("$2a$10$") or express_hash.startswith("$2b$10$")
    store.update_user(user.id, {"password_hash": express_hash})
    assert Users(store, rounds=10).authenticate("carol", "made by express").id == user.id
    store.close()
