"""Named security regression tests for token verification (issue 3). Each test forges or mangles
a token the way an attacker would and asserts the exact rejection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from jwtctl.config import Settings, default_settings
from jwtctl.errors import (
    BadSignature,
    DisallowedAlgorithm,
    ExpiredToken,
    ImmatureToken,
    InvalidClaim,
    MalformedToken,
    UnknownKey,
    UnsupportedCritical,
    WrongTokenType,
)
from jwtctl.keys import Key, Keyring, algorithm, load_key_file, open_keyring
from jwtctl.tokens import ACCESS_TYP, OWN_REQUIRED, REFRESH_TYP, Policy, sign, verify

NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: str | dict[str, Any], payload: str | dict[str, Any], secret: bytes) -> str:
    """A token built by hand: header/payload as JSON text (to allow duplicates) or objects."""
    h = header if isinstance(header, str) else json.dumps(header)
    p = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{b64(h.encode())}.{b64(p.encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "u1", "sid": "s1", "jti": "j1", "iat": NOW - 10, "exp": NOW + 600,
                            "iss": "jwtctl", "aud": "jwtctl"}  # fmt: skip
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


POLICY = Policy(OWN_REQUIRED | {"sid", "jti"}, "jwtctl", "jwtctl", 0, ACCESS_TYP)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return default_settings(home=tmp_path)


@pytest.fixture
def ring(settings: Settings) -> Keyring:
    return open_keyring(settings)


def access_keys(ring: Keyring) -> list[Key]:
    return ring.for_verification("access")


def good(ring: Keyring, **over: Any) -> str:
    return sign(claims(**over), ring.active("access"), typ=ACCESS_TYP)


def check(token: str, ring: Keyring, policy: Policy = POLICY) -> dict[str, Any]:
    return verify(token, access_keys(ring), policy, now=NOW).payload


def test_valid_token_round_trips(ring: Keyring) -> None:
    assert check(good(ring), ring)["sub"] == "u1"


def test_alg_none_rejected(ring: Keyring) -> None:
    key = ring.active("access")
    for alg in ("none", "None", "NONE"):
        header = {"alg": alg, "typ": ACCESS_TYP, "kid": key.kid}
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}."
        with pytest.raises(DisallowedAlgorithm, match="never accepted"):
            check(token, ring)


def test_hs256_signed_with_rsa_public_key_rejected(tmp_path: Path) -> None:
    ring = open_keyring(default_settings(home=tmp_path, alg="RS256", sources={"alg": "test"}))
    rsa = ring.active("access")
    assert rsa.alg == "RS256"
    public_pem = _pem(rsa)
    forged = raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": rsa.kid}, claims(), public_pem)
    with pytest.raises(DisallowedAlgorithm, match="alg 'HS256' but its key is RS256"):
        check(forged, ring)
    # the same attack against a PEM given on the command line
    pem_file = tmp_path / "pub.pem"
    pem_file.write_bytes(public_pem)
    external = load_key_file(pem_file, None)
    with pytest.raises(DisallowedAlgorithm):
        verify(forged, [external], Policy(frozenset({"exp"})), now=NOW, by_kid_only=False)


def test_hs256_signed_with_ec_public_key_rejected(tmp_path: Path) -> None:
    ring = open_keyring(default_settings(home=tmp_path, alg="ES256", sources={"alg": "test"}))
    ec = ring.active("access")
    forged = raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": ec.kid}, claims(), _pem(ec))
    with pytest.raises(DisallowedAlgorithm):
        check(forged, ring)


def _pem(key: Key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public: Any = key.verifying_key
    return bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    "kid", ["../../../../etc/passwd", "/dev/null", "hs-000000000000", "' OR 1=1 --", ""]
)
def test_forged_kid_rejected(ring: Keyring, kid: str) -> None:
    secret = ring.active("access").secret
    token = raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": kid}, claims(), secret)
    with pytest.raises(UnknownKey) as info:
        check(token, ring)
    assert info.value.kid == kid


def test_non_string_kid_rejected(ring: Keyring) -> None:
    token = raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": ["x"]}, claims(), b"k" * 32)
    with pytest.raises(MalformedToken, match="kid is not a string"):
        check(token, ring)


@pytest.mark.parametrize("header_name", ["jku", "x5u", "jwk", "x5c"])
def test_key_in_header_ignored(ring: Keyring, header_name: str) -> None:
    """The attacker signs with their own key and points at it; the header is never used."""
    attacker = b"attacker-controlled-secret-32-bytes!!"
    value: Any = (
        {"kty": "oct", "k": b64(attacker)} if header_name == "jwk" else "https://evil.example/k"
    )
    if header_name == "x5c":
        value = ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]
    token = raw_token({"alg": "HS256", "typ": ACCESS_TYP, header_name: value}, claims(), attacker)
    with pytest.raises(BadSignature):
        check(token, ring)


def test_unknown_crit_rejected(ring: Keyring) -> None:
    key = ring.active("access")
    for crit in (["exp"], ["b64"], ["x-custom"], []):
        header = {"alg": "HS256", "typ": ACCESS_TYP, "kid": key.kid, "crit": crit, "x-custom": 1}
        with pytest.raises(UnsupportedCritical):
            check(raw_token(header, claims(), key.secret), ring)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud", "sid", "jti"])
def test_missing_required_claim_rejected(ring: Keyring, claim: str) -> None:
    with pytest.raises(InvalidClaim) as info:
        check(good(ring, **{claim: None}), ring)
    assert info.value.claim == claim
    assert "missing" in info.value.message


def test_expired_rejected_with_when(ring: Keyring) -> None:
    with pytest.raises(ExpiredToken) as info:
        check(good(ring, exp=NOW - 1), ring)
    assert info.value.expired_at == NOW - 1
    assert info.value.message == "token expired at 2027-01-15T07:59:59Z (1 s ago)"
    with pytest.raises(ExpiredToken):
        check(good(ring, exp=NOW), ring)  # exp is exclusive


def test_leeway_applied_once(ring: Keyring) -> None:
    lenient = Policy(POLICY.required, "jwtctl", "jwtctl", 30, ACCESS_TYP)
    assert check(good(ring, exp=NOW - 29), ring, lenient)
    with pytest.raises(ExpiredToken):
        check(good(ring, exp=NOW - 30), ring, lenient)
    assert check(good(ring, nbf=NOW + 29), ring, lenient)
    with pytest.raises(ImmatureToken):
        check(good(ring, nbf=NOW + 31), ring, lenient)


def test_nbf_in_future_rejected(ring: Keyring) -> None:
    with pytest.raises(ImmatureToken) as info:
        check(good(ring, nbf=NOW + 60), ring)
    assert info.value.not_before == NOW + 60


def test_iat_in_future_rejected(ring: Keyring) -> None:
    with pytest.raises(ImmatureToken, match="issued in the future"):
        check(good(ring, iat=NOW + 60), ring)


@pytest.mark.parametrize(
    ("claim", "value"), [("iss", "evil"), ("aud", "other-api"), ("aud", ["a", "b"])]
)
def test_wrong_iss_or_aud_rejected(ring: Keyring, claim: str, value: Any) -> None:
    with pytest.raises(InvalidClaim) as info:
        check(good(ring, **{claim: value}), ring)
    assert info.value.claim == claim


def test_audience_list_containing_ours_accepted(ring: Keyring) -> None:
    assert check(good(ring, aud=["other", "jwtctl"]), ring)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_non_numeric_time_claim_rejected(ring: Keyring, claim: str) -> None:
    for value in ("1800000000", True, None if claim != "nbf" else [1]):
        if value is None:
            continue
        with pytest.raises(InvalidClaim, match="NumericDate"):
            check(good(ring, **{claim: value}), ring)


def test_tampered_payload_rejected(ring: Keyring) -> None:
    header, _, sig = good(ring).split(".")
    evil = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(BadSignature):
        check(f"{header}.{evil}.{sig}", ring)


def test_tampered_signature_rejected(ring: Keyring) -> None:
    token = good(ring)
    head, _, sig = token.rpartition(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(BadSignature):
        check(f"{head}.{flipped}", ring)
    with pytest.raises(BadSignature):
        check(f"{head}.", ring)


def test_refresh_token_presented_as_access_token_rejected(ring: Keyring) -> None:
    refresh = sign(claims(), ring.active("refresh"), typ=REFRESH_TYP)
    with pytest.raises(WrongTokenType, match="expected an access token"):
        check(refresh, ring)
    # even with the typ forged, the refresh key is not an access key
    forged = raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": ring.active("refresh").kid}, claims(),
                       ring.active("refresh").secret)  # fmt: skip
    with pytest.raises(UnknownKey):
        check(forged, ring)


def test_access_token_presented_as_refresh_token_rejected(ring: Keyring) -> None:
    policy = Policy(POLICY.required, "jwtctl", "jwtctl", 0, REFRESH_TYP)
    with pytest.raises(WrongTokenType, match="expected a refresh token"):
        verify(good(ring), ring.for_verification("refresh"), policy, now=NOW)


def test_missing_typ_rejected_for_own_tokens(ring: Keyring) -> None:
    key = ring.active("access")
    token = raw_token({"alg": "HS256", "kid": key.kid}, claims(), key.secret)
    with pytest.raises(WrongTokenType):
        check(token, ring)


def test_one_megabyte_token_rejected(ring: Keyring) -> None:
    token = good(ring, padding="x" * (1 << 20))
    with pytest.raises(MalformedToken, match="the limit is 65536"):
        check(token, ring)


def test_duplicate_keys_in_json_header_rejected(ring: Keyring) -> None:
    key = ring.active("access")
    header = f'{{"alg":"HS256","typ":"{ACCESS_TYP}","kid":"{key.kid}","alg":"none"}}'
    with pytest.raises(MalformedToken, match="header has duplicate key 'alg'"):
        check(raw_token(header, claims(), key.secret), ring)
    payload = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    header_ok = json.dumps({"alg": "HS256", "typ": ACCESS_TYP, "kid": key.kid})
    with pytest.raises(MalformedToken, match="payload has duplicate key 'sub'"):
        check(raw_token(header_ok, payload, key.secret), ring)


def test_nan_and_infinity_are_not_json(ring: Keyring) -> None:
    key = ring.active("access")
    payload = json.dumps(claims())[:-1] + ', "exp2": NaN}'
    with pytest.raises(MalformedToken, match="not JSON"):
        check(
            raw_token({"alg": "HS256", "typ": ACCESS_TYP, "kid": key.kid}, payload, key.secret),
            ring,
        )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty"),
        ("abc", "found 1"),
        ("a.b.c.d", "found 4"),
        ("a.b.c.d.e", "JWE"),
        ("e30.e30.@@@", "not base64url (character '@')"),
        ("e30.e30.a", "impossible length"),
        ("e30.W10.", "payload is JSON but not an object"),
        ("bm90anNvbg.e30.", "header is not JSON"),
        ("_w.e30.", "header is not UTF-8"),
        ("/w.e30.", "header is not base64url (character '/')"),
        ("ë30.e30.", "non-ASCII"),
    ],
)
def test_malformed_tokens_say_why(ring: Keyring, token: str, reason: str) -> None:
    with pytest.raises(MalformedToken, match=re.escape(reason)):
        check(token, ring)


def test_signature_is_checked_with_the_pinned_algorithm_only(tmp_path: Path) -> None:
    """An EdDSA keyring: a token naming that kid but claiming ES256 is refused before any
    signature work; a genuine EdDSA token verifies."""
    ring = open_keyring(default_settings(home=tmp_path, alg="EdDSA", sources={"alg": "test"}))
    ed = ring.active("access")
    assert check(sign(claims(), ed, typ=ACCESS_TYP), ring)
    header = {"alg": "ES256", "typ": ACCESS_TYP, "kid": ed.kid}
    sig = algorithm("EdDSA").sign(b"x", ed.signing_key)
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}.{b64(sig)}"
    with pytest.raises(DisallowedAlgorithm):
        check(token, ring)
