"""`jwtctl token issue | decode | verify` through the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Run, create_user, jwtctl

SECRET = "an-express-style-access-secret-of-40-bytes"


@pytest.fixture(autouse=True)
def alice(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTCTL_DB", persistent_url)
    create_user("alice", "correct horse battery", "--role", "admin")


def issue(*extra: str) -> str:
    run = jwtctl("token", "issue", "alice", *extra)
    assert run.exit_code == 0, run.stderr
    return run.stdout.strip()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(payload: dict[str, Any], secret: str, header: dict[str, Any] | None = None) -> str:
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


def one_line(run: Run) -> str:
    """The one error line (a first-use note about the keyring may precede it)."""
    errors = [line for line in run.stderr.splitlines() if line.startswith("jwtctl: error:")]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return errors[0]


# --- issue -----------------------------------------------------------------------------------


def test_issue_prints_only_the_token_when_piped() -> None:
    token = issue()
    assert token.count(".") == 2 and "\n" not in token
    payload = jwtctl("token", "decode", token, "--json").json()["payload"]
    assert payload["username"] == "alice" and payload["roles"] == ["admin"]
    assert payload["sub"] == payload["_id"]
    assert payload["exp"] - payload["iat"] == 900
    assert {"sid", "jti", "iss", "aud", "email", "fullName"} <= set(payload)


def test_issue_json_and_with_refresh() -> None:
    doc = jwtctl("token", "issue", "alice", "--with-refresh", "--json").json()
    assert set(doc) == {"accessToken", "refreshToken", "sessionId", "expiresAt", "claims"}
    assert doc["claims"]["sid"] == doc["sessionId"]
    refresh = jwtctl("token", "decode", doc["refreshToken"], "--json").json()
    assert (
        refresh["header"]["typ"] == "refresh+jwt" and refresh["payload"]["sid"] == doc["sessionId"]
    )
    two = jwtctl("token", "issue", "alice", "--with-refresh").stdout.splitlines()
    assert len(two) == 2 and all(t.count(".") == 2 for t in two)
    assert "refreshToken" not in jwtctl("token", "issue", "alice", "--json").json()


def test_issue_ttl_and_claims() -> None:
    token = issue(
        "--ttl", "5m", "--claim", "tenant=acme", "--claim", 'roles=["a","b"]', "--claim", "n=3"
    )
    payload = jwtctl("token", "decode", token, "--json").json()["payload"]
    assert payload["exp"] - payload["iat"] == 300
    assert (payload["tenant"], payload["roles"], payload["n"]) == ("acme", ["a", "b"], 3)


@pytest.mark.parametrize("claim", ["exp=1", "sub=admin", "iss=x", "sid=x", "_id=x", "jti=x"])
def test_issue_refuses_registered_claims(claim: str) -> None:
    run = jwtctl("token", "issue", "alice", "--claim", claim)
    assert run.exit_code == 2
    assert "cannot be set" in one_line(run)


def test_issue_bad_flags_and_users() -> None:
    assert jwtctl("token", "issue", "alice", "--ttl", "soon").exit_code == 2
    assert jwtctl("token", "issue", "alice", "--claim", "novalue").exit_code == 2
    assert jwtctl("token", "issue", "nobody").exit_code == 4
    jwtctl("user", "disable", "alice")
    run = jwtctl("token", "issue", "alice")
    assert run.exit_code == 1 and "disabled" in run.stderr


# --- decode ----------------------------------------------------------------------------------


def test_decode_any_jwt_with_times_and_status() -> None:
    now = int(time.time())
    token = hs256({"sub": "x", "exp": now - 120, "iat": now - 3600, "nbf": now - 3600}, "whatever")
    doc = jwtctl("token", "decode", token, "--json").json()
    assert set(doc) == {"header", "payload", "times", "status", "verified"}
    assert doc["verified"] is False and doc["status"] == "expired"
    assert doc["times"]["exp"]["value"] == now - 120
    assert (
        doc["times"]["exp"]["iso"].endswith("Z") and doc["times"]["exp"]["relative"] == "2 min ago"
    )
    text = jwtctl("token", "decode", token)
    assert text.exit_code == 0
    assert "UNVERIFIED" in text.stdout and "Status: expired" in text.stdout
    future = hs256({"nbf": now + 600}, "k")
    assert jwtctl("token", "decode", future, "--json").json()["status"] == "not yet valid"
    assert "never expires" in jwtctl("token", "decode", hs256({"a": 1}, "k")).stdout


def test_decode_reads_stdin_and_strips_bearer() -> None:
    token = issue()
    for arg, stdin in (("-", token + "\n"), (None, f"  Bearer {token}\n")):
        run = jwtctl("token", "decode", *([arg] if arg else []), "--json", input=stdin)
        assert run.exit_code == 0, run.stderr
        assert run.json()["payload"]["username"] == "alice"


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("hello", "found 1"),
        ("YWJj.e30.", "not JSON"),
        ("a.b.c", "impossible length"),
        ("e30.e30.***", "not base64url"),
        ("", "empty"),
    ],
)
def test_decode_garbage_exits_3_with_reason(garbage: str, reason: str) -> None:
    run = jwtctl("token", "decode", garbage)
    assert run.exit_code == 3
    assert reason in one_line(run) and "Traceback" not in run.stderr


# --- verify against the keyring and the store --------------------------------------------------


def test_verify_valid_token() -> None:
    token = issue()
    run = jwtctl("token", "verify", token)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith("VALID access token")
    doc = jwtctl("token", "verify", token, "--json").json()
    assert (
        doc["valid"] is True
        and doc["payload"]["username"] == "alice"
        and doc["header"]["typ"] == "at+jwt"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (["user", "passwd", "alice", "--password-stdin"], "revoked"),
        (["user", "disable", "alice"], "user is disabled"),
        (["user", "delete", "alice", "--yes"], "user no longer exists"),
    ],
)
def test_user_changes_kill_live_tokens(change: list[str], reason: str) -> None:
    token = issue()
    assert jwtctl("token", "verify", token).exit_code == 0
    assert jwtctl(*change, input="another password\n").exit_code == 0
    run = jwtctl("token", "verify", token)
    assert run.exit_code == 3
    assert reason in one_line(run)
    failed = jwtctl("token", "verify", token, "--json")
    assert (
        failed.exit_code == 3
        and failed.json()["valid"] is False
        and reason in failed.json()["error"]
    )
    assert jwtctl("token", "verify", token, "--offline").exit_code == 0  # signature and claims only


def test_passwd_keep_sessions_keeps_tokens() -> None:
    token = issue()
    run = jwtctl(
        "user", "passwd", "alice", "--password-stdin", "--keep-sessions", input="another password\n"
    )
    assert run.exit_code == 0
    assert jwtctl("token", "verify", token).exit_code == 0


def test_verify_refresh_type_without_rotating() -> None:
    doc = jwtctl("token", "issue", "alice", "--with-refresh", "--json").json()
    refresh = doc["refreshToken"]
    for _ in range(2):  # checking does not rotate: the same token stays valid
        run = jwtctl("token", "verify", refresh, "--type", "refresh", "--json")
        assert run.exit_code == 0, run.stderr
    wrong = jwtctl("token", "verify", refresh)
    assert wrong.exit_code == 3 and "expected an access token" in wrong.stderr
    assert jwtctl("token", "verify", doc["accessToken"], "--type", "refresh").exit_code == 3


def test_verify_leeway_iss_aud_require_flags() -> None:
    token = issue("--ttl", "1s")
    time.sleep(1.1)
    assert jwtctl("token", "verify", token).exit_code == 3
    assert jwtctl("token", "verify", token, "--leeway", "1m").exit_code == 0
    fresh = issue()
    assert "claim 'iss'" in jwtctl("token", "verify", fresh, "--iss", "other").stderr
    assert jwtctl("token", "verify", fresh, "--aud", "other").exit_code == 3
    assert jwtctl("token", "verify", fresh, "--require", "tenant").exit_code == 3
    tenant = issue("--claim", "tenant=acme")
    assert jwtctl("token", "verify", tenant, "--require", "tenant").exit_code == 0


# --- verify against a given key -------------------------------------------------------------------


def test_verify_with_secret_env_and_secret_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = int(time.time())
    token = hs256({"_id": "abc", "username": "bob", "iat": now, "exp": now + 60}, SECRET)
    monkeypatch.setenv("MY_SECRET", SECRET)
    strict = jwtctl("token", "verify", token, "--secret-env", "MY_SECRET")
    assert strict.exit_code == 3
    assert "claim 'aud': is required but missing" in strict.stderr
    relaxed = jwtctl(
        "token", "verify", token, "--secret-env", "MY_SECRET", "--no-iss", "--no-aud", "--json"
    )
    assert relaxed.exit_code == 0, relaxed.stderr
    assert relaxed.json()["payload"]["_id"] == "abc"
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    assert (
        jwtctl(
            "token", "verify", token, "--secret-file", str(secret_file), "--no-iss", "--no-aud"
        ).exit_code
        == 0
    )
    monkeypatch.setenv("MY_SECRET", SECRET + "x")
    bad = jwtctl("token", "verify", token, "--secret-env", "MY_SECRET", "--no-iss", "--no-aud")
    assert bad.exit_code == 3 and "signature does not match" in bad.stderr
    assert jwtctl("token", "verify", token, "--secret-env", "UNSET_VAR").exit_code == 2
    both = jwtctl(
        "token", "verify", token, "--secret-env", "MY_SECRET", "--secret-file", str(secret_file)
    )
    assert both.exit_code == 2


def test_verify_with_pem_jwk_and_jwks(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    payload = {
        "sub": "svc",
        "iss": "https://issuer.example",
        "aud": "api",
        "iat": now,
        "exp": now + 60,
    }
    import jwt

    token = jwt.encode(payload, private, algorithm="ES256", headers={"kid": "k1"})
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    flags = ["--iss", "https://issuer.example", "--aud", "api"]
    assert jwtctl("token", "verify", token, "--key", str(pem), *flags).exit_code == 0
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk_file = tmp_path / "key.jwk"
    jwk_file.write_text(json.dumps(jwk))
    assert jwtctl("token", "verify", token, "--key", str(jwk_file), *flags).exit_code == 0
    other = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**other, "kid": "k0"}, {**jwk, "kid": "k1"}]}))
    assert jwtctl("token", "verify", token, "--jwks", str(jwks), *flags).exit_code == 0
    jwks.write_text(json.dumps({"keys": [{**other, "kid": "k0"}]}))
    missing = jwtctl("token", "verify", token, "--jwks", str(jwks), *flags)
    assert missing.exit_code == 3 and "no key with kid 'k1'" in missing.stderr
    wrong_alg = jwtctl("token", "verify", token, "--key", str(pem), "--alg", "RS256", *flags)
    assert wrong_alg.exit_code == 2
    assert jwtctl("token", "verify", token, "--key", str(tmp_path / "missing.pem")).exit_code == 7
