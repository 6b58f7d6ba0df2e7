"""The keyring: creation on first use, permissions, weak secrets, signing precedence, rotation,
retirement and the JWK set."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from jwtctl.config import Settings, default_settings
from jwtctl.errors import ConfigError, KeyNotFound, Refused
from jwtctl.keys import generate, open_keyring, read_keyring_file, retire, thumbprint
from jwtctl.tokens import ACCESS_TYP, OWN_REQUIRED, Policy, sign, verify
from tests.helpers import jwtctl

NOW = 1_800_000_000.0


def settings(tmp_path: Path, **over: Any) -> Settings:
    sources = {name: "test" for name in over if name != "sources"}
    return default_settings(home=tmp_path, sources=sources, **over)


def test_first_use_creates_distinct_256_bit_secrets_once(tmp_path: Path) -> None:
    said: list[str] = []
    ring = open_keyring(settings(tmp_path), on_create=said.append)
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    access, refresh = ring.active("access"), ring.active("refresh")
    assert (access.alg, refresh.alg) == ("HS256", "HS256")
    assert len(access.secret) == 32 and len(refresh.secret) == 32
    assert access.secret != refresh.secret
    assert len(said) == 1 and str(path) in said[0] and "0600" in said[0]
    again = open_keyring(settings(tmp_path), on_create=said.append)
    assert len(said) == 1
    assert again.active("access").secret == access.secret


@pytest.mark.parametrize("use", ["access", "refresh"])
def test_short_explicit_secret_is_refused(tmp_path: Path, use: str) -> None:
    s = settings(tmp_path, **{f"{use}_secret": b"x" * 31})
    with pytest.raises(ConfigError, match="31 bytes; at least 32"):
        open_keyring(s)
    assert not (tmp_path / "keys.json").exists()


def test_equal_access_and_refresh_secrets_are_refused(tmp_path: Path) -> None:
    s = settings(tmp_path, access_secret=b"s" * 40, refresh_secret=b"s" * 40)
    with pytest.raises(ConfigError, match="same as the access secret"):
        open_keyring(s)


def test_cli_weak_secret_exits_7_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    jwtctl(
        "user",
        "create",
        "alice",
        "--email",
        "a@example.com",
        "--password-stdin",
        input="correct horse battery\n",
    )
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", "too-short")
    run = jwtctl("token", "issue", "alice")
    assert run.exit_code == 7
    assert run.stderr.startswith(
        "jwtctl: error: environment ACCESS_TOKEN_SECRET: the access secret is 9 bytes"
    )
    assert "too-short" not in run.stderr


def test_express_secrets_need_no_keyring_file(tmp_path: Path) -> None:
    s = settings(tmp_path, access_secret=b"a" * 40, refresh_secret=b"r" * 40)
    ring = open_keyring(s)
    assert not (tmp_path / "keys.json").exists()
    assert ring.active("access").secret == b"a" * 40
    assert ring.active("access").source == "test"
    token = sign({"sub": "x"}, ring.active("access"), typ=ACCESS_TYP)
    assert token.count(".") == 2


def test_configured_secret_signs_and_old_keyring_keys_still_verify(tmp_path: Path) -> None:
    first = open_keyring(settings(tmp_path))
    old_token = sign(_claims(), first.active("access"), typ=ACCESS_TYP)
    ring = open_keyring(settings(tmp_path, access_secret=b"a" * 40))
    assert ring.active("access").secret == b"a" * 40
    assert verify(old_token, ring.for_verification("access"), _policy(), now=NOW)


def test_asymmetric_alg_creates_a_key_that_wins_over_the_secret(tmp_path: Path) -> None:
    ring = open_keyring(settings(tmp_path, alg="EdDSA", access_secret=b"a" * 40))
    active = ring.active("access")
    assert active.alg == "EdDSA" and active.source == "keyring"
    jwk = active.public_jwk()
    assert jwk is not None and active.kid == thumbprint(jwk)
    assert ring.active("refresh").alg == "HS256"


def test_rfc7638_thumbprint_test_vector() -> None:
    """The example of RFC 7638 section 3.1."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMi"
        "cAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XP"
        "ksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rotate_keeps_old_tokens_valid_until_retired(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ring = open_keyring(s)
    old = ring.active("access")
    old_token = sign(_claims(), old, typ=ACCESS_TYP)
    new = generate(s, "HS256", "access", now=NOW)
    ring = open_keyring(s)
    assert ring.active("access").kid == new.kid
    assert {k.kid: k.state for k in ring.for_verification("access")} == {
        new.kid: "active",
        old.kid: "verify",
    }
    assert verify(old_token, ring.for_verification("access"), _policy(), now=NOW)
    with pytest.raises(Refused, match="active access key"):
        retire(s, str(new.kid))
    with pytest.raises(KeyNotFound):
        retire(s, "hs-nope")
    retire(s, str(old.kid))
    ring = open_keyring(s)
    from jwtctl.errors import UnknownKey

    with pytest.raises(UnknownKey):
        verify(old_token, ring.for_verification("access"), _policy(), now=NOW)


def test_jwks_publishes_public_keys_only(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert open_keyring(s).jwks() == {"keys": []}  # HS-only: nothing to publish
    for alg in ("EdDSA", "ES256", "RS256"):
        generate(s, alg, "access", now=NOW)
    doc = open_keyring(s).jwks()
    assert sorted(k["alg"] for k in doc["keys"]) == ["ES256", "EdDSA", "RS256"]
    for jwk in doc["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
        assert jwk["use"] == "sig" and jwk["kid"] == thumbprint(jwk)


@pytest.mark.parametrize(
    ("content", "mode", "problem"),
    [
        ('{"format": "jwtctl-keyring", "keys": []}', 0o644, "accessible by group or others (mode 0644)"),
        ('{"format": "jwtctl-keyring", "keys": []}', 0o640, "chmod 600"),
        ("{not json", 0o600, "is not valid JSON"),
        ('["a list"]', 0o600, "is not a jwtctl keyring"),
        ('{"format": "jwtctl-keyring", "keys": [{"kid": "x"}]}', 0o600, "key #1 is malformed"),
        ('{"format": "jwtctl-keyring", "keys": [{"kid": "x", "alg": "none", "use": "access", '
         '"state": "active", "created": "2026-01-01T00:00:00Z", "jwk": {"k": "AA"}}]}', 0o600, "malformed"),
    ],
)  # fmt: skip
def test_bad_keyring_files_exit_7(clean_env: Path, content: str, mode: int, problem: str) -> None:
    clean_env.mkdir(parents=True, exist_ok=True)
    path = clean_env / "keys.json"
    path.write_text(content)
    path.chmod(mode)
    run = jwtctl("keys", "list")
    assert run.exit_code == 7, run.stderr
    assert run.stderr.startswith(f"jwtctl: error: keyring {path}: ")
    assert problem in run.stderr
    assert "Traceback" not in run.stderr


def test_unreadable_keyring_path_exits_7(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTCTL_KEYS", str(clean_env / "a-directory"))
    (clean_env / "a-directory").mkdir(parents=True)
    run = jwtctl("keys", "list")
    assert run.exit_code == 7
    assert "cannot read" in run.stderr


def _open_and_report(home: str, out: Any) -> None:
    ring = open_keyring(default_settings(home=Path(home)))
    out.put((ring.active("access").kid, ring.active("refresh").kid))


def test_concurrent_first_use_makes_one_keyring(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_report, args=(str(tmp_path), out)) for _ in range(4)]
    for p in procs:
        p.start()
    kids = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(30)
    assert len(kids) == 1
    assert len(read_keyring_file(tmp_path / "keys.json")) == 2


def test_keys_cli_generate_list_rotate_retire_jwks() -> None:
    gen = jwtctl("keys", "generate", "--alg", "eddsa", "--json")
    assert gen.exit_code == 0, gen.stderr
    ed = gen.json()
    assert (ed["alg"], ed["use"], ed["state"]) == ("EdDSA", "access", "active")
    assert "created keyring" in gen.stderr
    listed = jwtctl("keys", "list", "--json").json()
    assert {(k["alg"], k["use"], k["state"]) for k in listed} == {
        ("HS256", "access", "verify-only"), ("HS256", "refresh", "active"), ("EdDSA", "access", "active")
    }  # fmt: skip
    assert all("jwk" not in k and "k" not in k for k in listed)
    rotated = jwtctl("keys", "rotate", "--json").json()
    assert rotated["alg"] == "EdDSA" and rotated["kid"] != ed["kid"]
    assert jwtctl("keys", "retire", rotated["kid"]).exit_code == 1
    assert jwtctl("keys", "retire", "nope").exit_code == 4
    assert jwtctl("keys", "retire", ed["kid"]).exit_code == 0
    jwks = json.loads(jwtctl("keys", "jwks").stdout)
    assert [k["kid"] for k in jwks["keys"]] == [rotated["kid"]]
    assert jwtctl("keys", "generate", "--alg", "RS256", "--use", "refresh").exit_code == 2
    assert jwtctl("keys", "generate", "--alg", "HS512").exit_code == 2


def _claims() -> dict[str, Any]:
    return {
        "sub": "u",
        "sid": "s",
        "jti": "j",
        "iat": NOW,
        "exp": NOW + 60,
        "iss": "jwtctl",
        "aud": "jwtctl",
    }


def _policy() -> Policy:
    return Policy(OWN_REQUIRED, "jwtctl", "jwtctl", 0, ACCESS_TYP)
