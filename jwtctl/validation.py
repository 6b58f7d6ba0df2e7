"""Normalisation and validation of user fields (SPEC §4). Each function returns the normalised
value or raises InvalidInput naming the field and the problem. Non-string input is refused here,
so the store never sees a dict (``{"$ne": null}``) where it expects a string."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")
ROLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}")
MAX_EMAIL = 254
MAX_FULL_NAME = 100
MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; longer passwords are refused, never truncated
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        dict: "an object",
        list: "an array",
    }.get(type(value), type(value).__name__)


def username(value: object) -> str:
    name = _string("username", value).strip().lower()
    if not name:
        raise InvalidInput("username", "is empty")
    if len(name) > 32:
        raise InvalidInput("username", f"is {len(name)} characters long; the limit is 32")
    if len(name) < 3:
        raise InvalidInput("username", "must be at least 3 characters")
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "username",
            f"{name!r} may only use a-z, 0-9, '.', '_' and '-', "
            "and must start with a letter or digit",
        )
    return name


def email(value: object) -> str:
    addr = _string("email", value).strip().lower()
    if not addr:
        raise InvalidInput("email", "is empty")
    if len(addr) > MAX_EMAIL:
        raise InvalidInput("email", f"is {len(addr)} characters long; the limit is {MAX_EMAIL}")
    for ch in addr:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs"):
            raise InvalidInput(
                "email", f"contains a space or invisible character (U+{ord(ch):04X})"
            )
    local, at, domain = addr.partition("@")
    if not at or "@" in domain:
        raise InvalidInput("email", f"{addr!r} must contain exactly one '@'")
    if not local or not domain:
        raise InvalidInput("email", f"{addr!r} needs a name before and a domain after the '@'")
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise InvalidInput("email", f"{addr!r} has a malformed domain")
    return addr


def full_name(value: object) -> str:
    name = _string("fullName", value).strip()
    if len(name) > MAX_FULL_NAME:
        raise InvalidInput(
            "fullName", f"is {len(name)} characters long; the limit is {MAX_FULL_NAME}"
        )
    for ch in name:
        if unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS:
            raise InvalidInput("fullName", f"contains a control character (U+{ord(ch):04X})")
    return name


def roles(values: object) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        raise InvalidInput("roles", "must be a list of strings")
    out: list[str] = []
    for value in values:
        role = _string("roles", value).strip()
        if not ROLE_RE.fullmatch(role):
            raise InvalidInput("roles", f"{role!r} is not a valid role name (A-Z a-z 0-9 : . _ -)")
        if role not in out:
            out.append(role)
    return tuple(out)


def password_bytes(value: object, *, for_new_password: bool) -> bytes:
    """The password as UTF-8 bytes. Over 72 bytes and NUL are refused everywhere; the 8-byte
    minimum applies to new passwords only (users from another system may have shorter ones)."""
    text = _string("password", value)
    if "\x00" in text:
        raise InvalidInput("password", "must not contain NUL characters")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("password", "is not valid Unicode text") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise InvalidInput(
            "password",
            f"is {len(data)} bytes in UTF-8; bcrypt uses at most {MAX_PASSWORD_BYTES}, "
            "so longer passwords are refused rather than silently cut",
        )
    if for_new_password and len(data) < MIN_PASSWORD_BYTES:
        raise InvalidInput("password", f"must be at least {MIN_PASSWORD_BYTES} bytes")
    if not data:
        raise InvalidInput("password", "is empty")
    return data
