"""JWTs: parse (for anyone's token), sign, and verify.

Verification never lets the token choose how it is checked:

* the key comes from the keyring (or the keys given for this verification), selected by ``kid``
  only; ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are ignored;
* the algorithm is the key's own; a token whose ``alg`` differs (``none``, HS256 with an RSA
  public key as secret, …) is rejected before any signature check;
* a ``crit`` header is rejected (jwtctl understands no JWS extensions);
* duplicate JSON keys, non-standard numbers (NaN) and tokens over 64 KiB are malformed;
* ``exp iat sub iss aud`` are required of jwtctl's own tokens, the header ``typ`` must match
  (an access token is never a refresh token, nor the reverse), and leeway is applied once.

HS256 uses the standard library's ``hmac``; asymmetric algorithms go through pyjwt (and so
cryptography), imported only when such a key is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import (
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
from .keys import Key, algorithm, b64url
from .timeutil import iso, relative

MAX_TOKEN_BYTES = 64 * 1024
ACCESS_TYP = "at+jwt"
REFRESH_TYP = "refresh+jwt"
TIME_CLAIMS = ("exp", "nbf", "iat", "auth_time")
OWN_REQUIRED = frozenset({"exp", "iat", "sub", "iss", "aud"})
RESERVED_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "_id",
    "username",
    "email",
)
"""Claims `token issue --claim` may not set: registered claims and jwtctl's identity claims."""
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True)
class Parsed:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class Verified:
    header: dict[str, Any]
    payload: dict[str, Any]
    key: Key


@dataclass(frozen=True)
class Policy:
    """What a verification requires beyond a good signature."""

    required: frozenset[str] = OWN_REQUIRED
    issuer: str | None = None
    audience: str | None = None
    leeway: int = 0
    typ: str | None = None  # the header typ required, or None to accept any


# --- parsing ---------------------------------------------------------------------------------


def _b64decode(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        bad = next(c for c in segment if not (c.isascii() and (c.isalnum() or c in "-_")))
        raise MalformedToken(f"{what} is not base64url (character {bad!r})")
    if len(segment) % 4 == 1:
        raise MalformedToken(f"{what} is not base64url (impossible length {len(segment)})")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"{what} is not base64url ({exc})") from None


def _no_duplicates(what: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise MalformedToken(f"{what} has duplicate key {key!r}")
            seen[key] = value
        return seen

    return hook


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedToken(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates(what), parse_constant=_bad_constant
        )
    except MalformedToken:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"{what} is JSON but not an object")
    return value


def clean(token: str) -> str:
    """Accept what people paste: surrounding whitespace and an ``Authorization: Bearer`` prefix."""
    text = token.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text


def parse(token: str) -> Parsed:
    """Split and decode a compact JWS without verifying anything. Raises MalformedToken saying
    exactly what is wrong."""
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedToken(f"token is {len(token)} bytes; the limit is {MAX_TOKEN_BYTES}")
    if not token:
        raise MalformedToken("token is empty")
    if not token.isascii():
        raise MalformedToken("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) == 5:
        raise MalformedToken(
            "token has 5 segments: an encrypted JWT (JWE), which jwtctl does not read"
        )
    if len(parts) != 3:
        raise MalformedToken(
            f"expected 3 dot-separated segments (header.payload.signature), found {len(parts)}"
        )
    header = _json_object(_b64decode(parts[0], "header"), "header")
    payload = _json_object(_b64decode(parts[1], "payload"), "payload")
    signature = _b64decode(parts[2], "signature")
    return Parsed(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


# --- signing ---------------------------------------------------------------------------------


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(payload: Mapping[str, Any], key: Key, *, typ: str) -> str:
    header: dict[str, Any] = {"alg": key.alg, "typ": typ}
    if key.kid:
        header["kid"] = key.kid
    signing_input = b64url(_json(header)) + "." + b64url(_json(payload))
    data = signing_input.encode("ascii")
    if key.alg in _HMAC_DIGESTS:
        signature = hmac.new(key.secret, data, _HMAC_DIGESTS[key.alg]).digest()
    else:
        signature = algorithm(key.alg).sign(data, key.signing_key)
    return signing_input + "." + b64url(signature)


# --- verifying -------------------------------------------------------------------------------


def _typ_matches(typ: object, expected: str) -> bool:
    if not isinstance(typ, str):
        return False
    value = typ.lower()
    return value in (expected, "application/" + expected)


def select_key(parsed: Parsed, keys: Sequence[Key], *, by_kid_only: bool) -> Key:
    """The key that must have signed this token, with the algorithm pinned to that key.
    ``by_kid_only``: a token naming a kid must name one of ``keys`` (the keyring)."""
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise MalformedToken("header has no alg")
    if alg.lower() == "none":
        raise DisallowedAlgorithm(alg, "alg 'none' (an unsigned token) is never accepted")
    crit = header.get("crit")
    if crit is not None:
        names = [str(n) for n in crit] if isinstance(crit, list) else [str(crit)]
        raise UnsupportedCritical(names or ["(empty crit list)"])
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedToken("header kid is not a string")
    if kid is not None and by_kid_only:
        match = next((k for k in keys if k.kid == kid), None)
        if match is None:
            raise UnknownKey(kid, f"no key with kid {kid!r} in the keyring")
        candidates = [match]
    elif kid is not None:
        candidates = [k for k in keys if k.kid == kid] or [k for k in keys if k.kid is None]
        if not candidates:
            raise UnknownKey(kid, f"no key with kid {kid!r} among the {len(keys)} given")
    else:
        candidates = list(keys)
    pinned = [k for k in candidates if k.alg == alg]
    if not pinned:
        algs = sorted({k.alg for k in candidates})
        raise DisallowedAlgorithm(
            alg, f"token says alg {alg!r} but its key is {' / '.join(algs) or 'missing'}; refusing"
        )
    for key in pinned:
        if _signature_ok(parsed, key):
            return key
    raise BadSignature()


def _signature_ok(parsed: Parsed, key: Key) -> bool:
    if key.alg in _HMAC_DIGESTS:
        expected = hmac.new(key.secret, parsed.signing_input, _HMAC_DIGESTS[key.alg]).digest()
        return hmac.compare_digest(expected, parsed.signature)
    try:
        return bool(
            algorithm(key.alg).verify(parsed.signing_input, key.verifying_key, parsed.signature)
        )
    except (ValueError, TypeError):
        return False


def _number(payload: Mapping[str, Any], claim: str) -> float | None:
    value = payload.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClaim(claim, "must be a number of seconds since the epoch (NumericDate)")
    return float(value)


def check_claims(payload: Mapping[str, Any], policy: Policy, now: float) -> None:
    for claim in sorted(policy.required):
        if claim not in payload:
            raise InvalidClaim(claim, "is required but missing")
    exp, nbf, iat = (_number(payload, c) for c in ("exp", "nbf", "iat"))
    leeway = policy.leeway
    if exp is not None and now >= exp + leeway:
        raise ExpiredToken(exp, f"token expired at {iso(exp)} ({relative(exp, now)})")
    if nbf is not None and now + leeway < nbf:
        raise ImmatureToken(nbf, f"token is not valid before {iso(nbf)} ({relative(nbf, now)})")
    if iat is not None and now + leeway < iat:
        raise ImmatureToken(
            iat, f"token was issued in the future, at {iso(iat)} ({relative(iat, now)})"
        )
    if "sub" in payload and not isinstance(payload["sub"], str):
        raise InvalidClaim("sub", "must be a string")
    if policy.issuer is not None:
        iss = payload.get("iss")
        if iss != policy.issuer:
            raise InvalidClaim("iss", f"is {iss!r}, expected {policy.issuer!r}")
    if policy.audience is not None:
        aud = payload.get("aud")
        values = aud if isinstance(aud, list) else [aud]
        if policy.audience not in values:
            raise InvalidClaim("aud", f"is {aud!r}, expected {policy.audience!r}")


def verify(
    token: str,
    keys: Sequence[Key],
    policy: Policy,
    *,
    now: float,
    by_kid_only: bool = True,
) -> Verified:
    """Verify a token against ``keys``. Raises a TokenError subclass saying why not."""
    parsed = parse(token)
    if policy.typ is not None and not _typ_matches(parsed.header.get("typ"), policy.typ):
        got = parsed.header.get("typ")
        if got is None and "sid" in parsed.payload and "username" not in parsed.payload:
            got = "a refresh token"
        raise WrongTokenType(_TYP_NAMES.get(policy.typ, policy.typ), got)
    key = select_key(parsed, keys, by_kid_only=by_kid_only)
    check_claims(parsed.payload, policy, now)
    return Verified(parsed.header, parsed.payload, key)


_TYP_NAMES = {
    ACCESS_TYP: f"an access token (typ {ACCESS_TYP})",
    REFRESH_TYP: f"a refresh token (typ {REFRESH_TYP})",
}


def time_claims(payload: Mapping[str, Any], now: float) -> dict[str, dict[str, Any]]:
    """Every numeric time claim as {value, iso, relative}, for people and for --json."""
    out: dict[str, dict[str, Any]] = {}
    for claim in TIME_CLAIMS:
        value = payload.get(claim)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                out[claim] = {
                    "value": value,
                    "iso": iso(float(value)),
                    "relative": relative(float(value), now),
                }
            except (OverflowError, OSError, ValueError):
                out[claim] = {"value": value, "iso": None, "relative": "out of range"}
    return out


def time_status(payload: Mapping[str, Any], now: float, leeway: int = 0) -> str:
    """'expired', 'not yet valid' or 'valid-by-time' (signature not considered)."""
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and now >= exp + leeway:
        return "expired"
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now + leeway < nbf:
        return "not yet valid"
    return "valid-by-time"


def jti_hash(jti: str) -> str:
    return hashlib.sha256(jti.encode("utf-8")).hexdigest()
