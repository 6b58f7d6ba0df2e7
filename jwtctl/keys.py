"""Signing keys: the keyring file, secrets from the configuration, and keys given for one
verification (`--key`, `--jwks`, `--secret-file`, `--secret-env`).

The keyring is a JSON file (mode 0600) of keys, each with a ``kid``, an ``alg``, a ``use``
(``access`` or ``refresh``) and a ``state`` (``active`` signs, ``verify`` only verifies). Access
keys may be HS256, EdDSA, ES256 or RS256; refresh keys are always HS256 (only jwtctl verifies
them). Asymmetric keys have RFC 7638 thumbprints as ``kid``.

Which key signs access tokens:

1. an asymmetric active access key in the keyring (``JWTCTL_ALG`` asymmetric creates one);
2. else the configured ``JWTCTL_ACCESS_SECRET`` / ``ACCESS_TOKEN_SECRET`` (the Express design);
3. else the keyring's active access key (an HS256 secret created on first use).

Refresh tokens are signed with the configured refresh secret, else the keyring's refresh key.
Every other key of the same use stays valid for verification until retired.

``cryptography`` (through pyjwt) is imported only for asymmetric keys, so HS256 work and
``token decode`` start fast.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ALGORITHMS, MIN_SECRET_BYTES, Settings
from .errors import ConfigError, InvalidInput, KeyExists, KeyNotFound, Refused
from .timeutil import iso, parse_iso

if TYPE_CHECKING:
    from jwt.algorithms import Algorithm

ASYMMETRIC = ("EdDSA", "ES256", "RS256")
USES = ("access", "refresh")
FORMAT = "jwtctl-keyring"
RSA_BITS = 2048
_PUBLIC_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}
# Algorithms accepted when verifying a token against a key given on the command line.
EXTERNAL_ALGS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384",
                 "PS512", "ES256", "ES384", "ES512", "EdDSA")  # fmt: skip


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key."""
    members = _PUBLIC_MEMBERS[str(public_jwk["kty"])]
    canonical = json.dumps(
        {m: public_jwk[m] for m in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


@functools.cache
def algorithm(alg: str) -> Algorithm:
    """pyjwt's implementation of a JWS algorithm (loads cryptography for asymmetric ones)."""
    from jwt.algorithms import get_default_algorithms

    return get_default_algorithms()[alg]


@dataclass(frozen=True)
class Key:
    kid: str | None
    alg: str
    use: str
    state: str  # "active" or "verify"
    created: float
    jwk: Mapping[str, Any] = field(repr=False)
    source: str = "keyring"

    @property
    def symmetric(self) -> bool:
        return self.alg.startswith("HS")

    @property
    def secret(self) -> bytes:
        return b64url_bytes(str(self.jwk["k"]))

    @functools.cached_property
    def signing_key(self) -> Any:
        if self.symmetric:
            return self.secret
        return algorithm(self.alg).from_jwk(dict(self.jwk))

    @functools.cached_property
    def verifying_key(self) -> Any:
        if self.symmetric:
            return self.secret
        key = algorithm(self.alg).from_jwk(dict(self.jwk))
        return key.public_key() if hasattr(key, "private_bytes") else key

    def public_jwk(self) -> dict[str, Any] | None:
        """The RFC 7517 public key (None for symmetric keys, which are never published)."""
        if self.symmetric:
            return None
        members = _PUBLIC_MEMBERS[str(self.jwk["kty"])]
        public = {m: self.jwk[m] for m in members}
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def describe(self) -> dict[str, Any]:
        """What `keys list` shows: never key material."""
        return {
            "kid": self.kid,
            "alg": self.alg,
            "use": self.use,
            "state": "active" if self.state == "active" else "verify-only",
            "created": iso(self.created) if self.created else None,
            "source": self.source,
        }


def _new_jwk(alg: str) -> dict[str, Any]:
    if alg == "HS256":
        return {"kty": "oct", "k": b64url(secrets.token_bytes(32))}
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if alg == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        raise InvalidInput("alg", f"{alg!r} is not one of {', '.join(ALGORITHMS)}")
    jwk = algorithm(alg).to_jwk(private, as_dict=True)
    assert isinstance(jwk, dict)
    return jwk


def new_key(alg: str, use: str, *, now: float, state: str = "active") -> Key:
    if use == "refresh" and alg != "HS256":
        raise InvalidInput("alg", "refresh keys are always HS256 (only jwtctl verifies them)")
    jwk = _new_jwk(alg)
    if alg == "HS256":
        kid = "hs-" + secrets.token_hex(6)
    else:
        members = _PUBLIC_MEMBERS[str(jwk["kty"])]
        kid = thumbprint({m: jwk[m] for m in members})
    return Key(kid, alg, use, state, now, jwk)


def secret_key(secret: bytes, *, use: str, source: str, alg: str = "HS256") -> Key:
    """A key for a configured or given HMAC secret. Its kid is derived from the secret (an HMAC
    of it, which reveals nothing), so tokens name it and it survives restarts."""
    kid = "env-" + b64url(hashlib.sha256(b"jwtctl kid\x00" + secret).digest()[:9])
    return Key(kid, alg, use, "active", 0.0, {"kty": "oct", "k": b64url(secret)}, source)


# --- the keyring file -------------------------------------------------------------------------


def _problem(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"keyring {path}", problem)


def read_keyring_file(path: Path) -> list[Key]:
    """Read and check a keyring file. Unreadable, malformed or group/world-accessible files are
    ConfigErrors (exit 7) that say what to do."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _problem(path, f"cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _problem(path, "cannot read: it is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise _problem(
            path,
            f"is accessible by group or others (mode {mode:04o}); it holds private keys: "
            f"run `chmod 600 {path}`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _problem(path, f"cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _problem(path, f"is not valid JSON ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("keys"), list)
    ):
        raise _problem(
            path, f"is not a jwtctl keyring (expected {{'format': '{FORMAT}', 'keys': [...]}})"
        )
    keys = []
    for i, item in enumerate(data["keys"]):
        try:
            keys.append(_key_from_json(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise _problem(path, f"key #{i + 1} is malformed ({exc})") from None
    return keys


def _key_from_json(item: Mapping[str, Any]) -> Key:
    kid, alg, use, state = str(item["kid"]), str(item["alg"]), str(item["use"]), str(item["state"])
    if alg not in ALGORITHMS or use not in USES or state not in ("active", "verify"):
        raise ValueError(f"unknown alg/use/state {alg}/{use}/{state}")
    jwk = item["jwk"]
    if not isinstance(jwk, dict) or ("k" not in jwk and "d" not in jwk):
        raise ValueError("no key material")
    return Key(kid, alg, use, state, parse_iso(str(item["created"])), jwk)


def write_keyring_file(path: Path, keys: Sequence[Key]) -> None:
    """Atomically replace the keyring (a 0600 temporary file renamed over it)."""
    doc = {
        "format": FORMAT,
        "version": 1,
        "keys": [
            {"kid": k.kid, "alg": k.alg, "use": k.use, "state": k.state, "created": iso(k.created),
             "jwk": dict(k.jwk)}
            for k in keys
            if k.source == "keyring"
        ],
    }  # fmt: skip
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise changes to the keyring between processes (a lock file beside it)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _problem(path, f"cannot create or lock: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the keyring in use ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyring:
    path: Path
    keys: tuple[Key, ...]

    def active(self, use: str) -> Key:
        for key in self.keys:
            if key.use == use and key.state == "active":
                return key
        raise KeyNotFound(f"(active {use} key)")

    def for_verification(self, use: str) -> list[Key]:
        """Every key of this use, the active one first."""
        return sorted((k for k in self.keys if k.use == use), key=lambda k: k.state != "active")

    def get(self, kid: str) -> Key | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        """Public access keys only (RFC 7517); symmetric and refresh keys are never published."""
        published = [k.public_jwk() for k in self.for_verification("access")]
        return {"keys": [j for j in published if j is not None]}


def _configured_secrets(settings: Settings) -> dict[str, Key]:
    found: dict[str, Key] = {}
    for use, value in (("access", settings.access_secret), ("refresh", settings.refresh_secret)):
        if value is None:
            continue
        source = settings.source(f"{use}_secret")
        if len(value) < MIN_SECRET_BYTES:
            raise ConfigError(
                source,
                f"the {use} secret is {len(value)} bytes; at least {MIN_SECRET_BYTES} are required "
                "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
            )
        found[use] = secret_key(value, use=use, source=source)
    if (
        "access" in found
        and "refresh" in found
        and found["access"].secret == found["refresh"].secret
    ):
        raise ConfigError(
            settings.source("refresh_secret"),
            "the refresh secret is the same as the access secret; they must differ, or a refresh "
            "token could pass as an access token",
        )
    return found


def _missing(
    stored: list[Key], settings: Settings, configured: Mapping[str, Key]
) -> list[tuple[str, str]]:
    """(alg, use) of the keys to create so that every use has a key to sign with."""
    wanted: list[tuple[str, str]] = []
    alg_explicit = settings.source("alg") != "default"
    active_access = next((k for k in stored if k.use == "access" and k.state == "active"), None)
    if settings.alg in ASYMMETRIC:
        if (
            active_access is None
            or active_access.symmetric
            or (alg_explicit and active_access.alg != settings.alg)
        ):
            wanted.append((settings.alg, "access"))
    elif "access" not in configured and (
        active_access is None or (alg_explicit and active_access.alg != settings.alg)
    ):
        wanted.append(("HS256", "access"))
    if "refresh" not in configured and not any(
        k.use == "refresh" and k.state == "active" for k in stored
    ):
        wanted.append(("HS256", "refresh"))
    return wanted


def _merge(stored: list[Key], added: Sequence[Key]) -> list[Key]:
    """Add keys; each added key becomes the active one of its use, the old one verify-only."""
    uses = {k.use for k in added}
    kept = [
        replace(k, state="verify") if k.use in uses and k.state == "active" else k for k in stored
    ]
    return kept + list(added)


def open_keyring(
    settings: Settings,
    *,
    on_create: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Keyring:
    """The keys for signing and verifying, creating what is missing (and saying so once through
    ``on_create``). Explicit secrets shorter than 32 bytes, or equal for access and refresh, are
    ConfigErrors (exit 7)."""
    path = settings.keys
    configured = _configured_secrets(settings)
    stored = read_keyring_file(path)
    if _missing(stored, settings, configured):
        with _locked(path):
            stored = read_keyring_file(path)  # another process may have created them meanwhile
            added = [
                new_key(alg, use, now=clock())
                for alg, use in _missing(stored, settings, configured)
            ]
            if added:
                existed = path.exists()
                stored = _merge(stored, added)
                write_keyring_file(path, stored)
                if on_create is not None:
                    what = ", ".join(f"{k.alg} {k.use} key {k.kid}" for k in added)
                    verb = "added" if existed else "created keyring"
                    on_create(f"{verb} {path} (mode 0600): {what}")
    return Keyring(path, tuple(_in_use(stored, configured)))


def _in_use(stored: list[Key], configured: Mapping[str, Key]) -> list[Key]:
    """Apply the signing precedence: a configured secret signs unless an asymmetric keyring key
    is active for access tokens; keyring keys that do not sign stay verify-only."""
    keys = list(stored)
    for use, secret in configured.items():
        active = next((k for k in keys if k.use == use and k.state == "active"), None)
        if use == "access" and active is not None and not active.symmetric:
            keys.append(replace(secret, state="verify"))
        else:
            keys = [replace(k, state="verify") if k.use == use else k for k in keys]
            keys.insert(0, secret)
    return keys


def change_keyring(
    settings: Settings, change: Callable[[list[Key]], list[Key]]
) -> tuple[list[Key], list[Key]]:
    """Apply ``change`` to the stored keys under the lock; returns (before, after)."""
    path = settings.keys
    _configured_secrets(settings)
    with _locked(path):
        before = read_keyring_file(path)
        after = change(list(before))
        write_keyring_file(path, after)
    return before, after


def generate(settings: Settings, alg: str, use: str, *, now: float) -> Key:
    """Add a new key and make it the active one of its use (the old one stays for verifying)."""
    key = new_key(alg, use, now=now)

    def add(stored: list[Key]) -> list[Key]:
        if any(k.kid == key.kid for k in stored):
            raise KeyExists(str(key.kid))
        return _merge(stored, [key])

    change_keyring(settings, add)
    return key


def retire(settings: Settings, kid: str) -> Key:
    """Remove a verify-only key from the keyring. The active key of a use cannot be retired."""
    for key in _configured_secrets(settings).values():
        if key.kid == kid:
            raise Refused(f"key {kid} comes from {key.source}; unset it there instead")
    found: list[Key] = []

    def remove(stored: list[Key]) -> list[Key]:
        match = [k for k in stored if k.kid == kid]
        if not match:
            raise KeyNotFound(kid)
        if match[0].state == "active":
            raise Refused(
                f"key {kid} is the active {match[0].use} key; run `jwtctl keys rotate` first, "
                "then retire it"
            )
        found.extend(match)
        return [k for k in stored if k.kid != kid]

    change_keyring(settings, remove)
    return found[0]


# --- keys given on the command line for one verification ----------------------------------------


def _infer_alg(private_or_public: Any, wanted: str | None) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = private_or_public
    family: tuple[str, ...]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        family, default = ("RS", "PS"), "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        default = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name, ""
        )
        family = (default,)
        if not default:
            raise InvalidInput("key", f"unsupported curve {key.curve.name}")
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        family, default = ("EdDSA",), "EdDSA"
    else:
        raise InvalidInput("key", f"unsupported key type {type(key).__name__}")
    if wanted is None:
        return default
    if not wanted.startswith(family):
        raise InvalidInput("alg", f"{wanted} cannot be used with this {type(key).__name__} key")
    return wanted


def _external_from_jwk(jwk: Mapping[str, Any], wanted: str | None, source: str) -> Key:
    kty = jwk.get("kty")
    kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
    if kty == "oct":
        alg = wanted or str(jwk.get("alg") or "HS256")
        if not alg.startswith("HS"):
            raise InvalidInput("alg", f"{alg} cannot be used with a symmetric (oct) key")
        return Key(kid, alg, "external", "active", 0.0, {"kty": "oct", "k": jwk["k"]}, source)
    if kty not in _PUBLIC_MEMBERS:
        raise InvalidInput("key", f"unsupported JWK kty {kty!r}")
    guess = wanted or (str(jwk["alg"]) if isinstance(jwk.get("alg"), str) else None)
    probe = {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}[str(kty)]
    if kty == "EC":
        probe = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(
            str(jwk.get("crv")), "ES256"
        )
    try:
        loaded = algorithm(probe).from_jwk(dict(jwk))
    except Exception as exc:  # pyjwt raises several types for a bad JWK
        raise InvalidInput("key", f"not a usable JWK: {exc}") from None
    alg = _infer_alg(loaded, guess)
    if alg not in EXTERNAL_ALGS:
        raise InvalidInput("alg", f"{alg} is not supported")
    return Key(kid, alg, "external", "active", 0.0, dict(jwk), source)


def load_key_file(path: Path, alg: str | None) -> Key:
    """A PEM (public key, private key or certificate) or JWK file, for `token verify --key`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--key {path}", f"cannot read: {exc.strerror}") from None
    text = data.strip()
    if text.startswith(b"{"):
        try:
            jwk = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput("key", f"{path} is not valid JSON: {exc}") from None
        return _external_from_jwk(jwk, alg, f"--key {path}")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    loaded: Any = None
    for loader in (
        serialization.load_pem_public_key,
        lambda d: serialization.load_pem_private_key(d, password=None),
        lambda d: x509.load_pem_x509_certificate(d).public_key(),
    ):
        try:
            loaded = loader(text)
            break
        except (ValueError, TypeError):
            continue
    if loaded is None:
        raise InvalidInput("key", f"{path} is neither a PEM key or certificate nor a JWK")
    chosen = _infer_alg(loaded, alg)
    public = loaded.public_key() if hasattr(loaded, "private_bytes") else loaded
    jwk = algorithm(chosen).to_jwk(public, as_dict=True)
    assert isinstance(jwk, dict)
    return Key(None, chosen, "external", "active", 0.0, jwk, f"--key {path}")


def load_jwks_file(path: Path, alg: str | None) -> list[Key]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--jwks {path}", f"cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("jwks", f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise InvalidInput("jwks", f"{path} is not a JWK set ({{'keys': [...]}})")
    return [
        _external_from_jwk(j, alg, f"--jwks {path}") for j in doc["keys"] if isinstance(j, dict)
    ]


def external_secret(secret: bytes, alg: str | None, source: str) -> Key:
    chosen = alg or "HS256"
    if not chosen.startswith("HS"):
        raise InvalidInput("alg", f"{chosen} needs a public key (--key or --jwks), not a secret")
    return replace(secret_key(secret, use="external", source=source, alg=chosen), kid=None)
