"""Every error jwtctl raises, and the one table that maps them to exit codes.

::

    JwtctlError                      exit 1   operation failed
    ├── InvalidInput (.field)        exit 2   a value fails validation (bad email, short password)
    ├── TokenError                   exit 3   token rejected
    │   ├── MalformedToken                    not three segments, not base64url, not JSON, too large
    │   ├── BadSignature
    │   ├── DisallowedAlgorithm (.alg)        alg none, or not the key's algorithm
    │   ├── UnknownKey (.kid)
    │   ├── UnsupportedCritical (.names)      a `crit` header we do not understand
    │   ├── WrongTokenType (.expected, .got)
    │   ├── ExpiredToken (.expired_at)
    │   ├── ImmatureToken (.not_before)
    │   ├── InvalidClaim (.claim)             missing, wrong type, wrong value
    │   └── RevokedToken (.reason)            session ended, user disabled or gone, password changed
    │       └── RefreshReuse (.session_id)    an old refresh token came back: the session is revoked
    ├── NotFound                     exit 4
    │   ├── UserNotFound (.user)
    │   ├── SessionNotFound (.session_id)
    │   └── KeyNotFound (.kid)
    ├── Conflict                     exit 5
    │   ├── UserExists (.field, .value)
    │   └── KeyExists (.kid)
    ├── StoreUnavailable (.location) exit 6   cannot connect, timed out, read-only
    ├── ConfigError (.source)        exit 7   bad value, weak secret, unreadable keyring
    ├── AuthenticationFailed         exit 1   wrong password, unknown or disabled user (one message)
    ├── TooManyAttempts (.retry_after)
    └── Refused                      exit 1   an operation the rules forbid (retire the active key)

Third-party errors (pyjwt, pymongo, sqlite3, bcrypt) are translated at the boundary where they
occur, with ``raise … from exc``; nothing above the store or token layers sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (SPEC §3). The only place these numbers are written down."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    TOKEN_REJECTED = 3
    NOT_FOUND = 4
    CONFLICT = 5
    STORE_UNAVAILABLE = 6
    CONFIG = 7
    INTERRUPTED = 130


class JwtctlError(Exception):
    """Base of every error jwtctl raises on purpose. ``message`` is one line, for people."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(JwtctlError):
    """A value given by the user or a client fails validation."""

    exit_code = ExitCode.USAGE

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid {field}: {problem}")
        self.field = field
        self.problem = problem


# --- token problems -------------------------------------------------------------------------


class TokenError(JwtctlError):
    """A token was rejected. The message says exactly why."""

    exit_code = ExitCode.TOKEN_REJECTED


class MalformedToken(TokenError):
    pass


class BadSignature(TokenError):
    def __init__(self, message: str = "signature does not match") -> None:
        super().__init__(message)


class DisallowedAlgorithm(TokenError):
    def __init__(self, alg: object, message: str) -> None:
        super().__init__(message)
        self.alg = alg


class UnknownKey(TokenError):
    def __init__(self, kid: object, message: str | None = None) -> None:
        super().__init__(message or f"no key with kid {kid!r}")
        self.kid = kid


class UnsupportedCritical(TokenError):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            "token header marks extensions critical that jwtctl does not understand: "
            + ", ".join(repr(n) for n in names)
        )
        self.names = tuple(names)


class WrongTokenType(TokenError):
    def __init__(self, expected: str, got: object) -> None:
        super().__init__(f"wrong token type: expected {expected}, got {got!r}")
        self.expected = expected
        self.got = got


class ExpiredToken(TokenError):
    def __init__(self, expired_at: float, message: str) -> None:
        super().__init__(message)
        self.expired_at = expired_at


class ImmatureToken(TokenError):
    def __init__(self, not_before: float, message: str) -> None:
        super().__init__(message)
        self.not_before = not_before


class InvalidClaim(TokenError):
    def __init__(self, claim: str, problem: str) -> None:
        super().__init__(f"claim {claim!r}: {problem}")
        self.claim = claim
        self.problem = problem


class RevokedToken(TokenError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"token revoked: {reason}")
        self.reason = reason


class RefreshReuse(RevokedToken):
    """An already-rotated refresh token was presented outside the grace window."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"refresh token reused; session {session_id} has been revoked")
        self.session_id = session_id


# --- not found / conflict -------------------------------------------------------------------


class NotFound(JwtctlError):
    exit_code = ExitCode.NOT_FOUND


class UserNotFound(NotFound):
    def __init__(self, user: str) -> None:
        super().__init__(f"no such user: {user}")
        self.user = user


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no such session: {session_id}")
        self.session_id = session_id


class KeyNotFound(NotFound):
    def __init__(self, kid: str) -> None:
        super().__init__(f"no such key: {kid}")
        self.kid = kid


class Conflict(JwtctlError):
    exit_code = ExitCode.CONFLICT


class UserExists(Conflict):
    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"a user with this {field} already exists: {value}")
        self.field = field
        self.value = value


class KeyExists(Conflict):
    def __init__(self, kid: str) -> None:
        super().__init__(f"a key with kid {kid} already exists")
        self.kid = kid


# --- setup and system -----------------------------------------------------------------------


class StoreUnavailable(JwtctlError):
    exit_code = ExitCode.STORE_UNAVAILABLE

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"store unavailable ({location}): {problem}")
        self.location = location
        self.problem = problem


class ConfigError(JwtctlError):
    """A configuration value is malformed, weak or unreadable. ``source`` says where it came from
    (``flag --db``, ``environment JWTCTL_DB``, ``file /x/config.toml key db``)."""

    exit_code = ExitCode.CONFIG

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class AuthenticationFailed(JwtctlError):
    """Wrong password, unknown user or disabled user: one message for all three."""

    def __init__(self, message: str = "invalid username or password") -> None:
        super().__init__(message)


class TooManyAttempts(JwtctlError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class Refused(JwtctlError):
    """The request is understood but the rules forbid it."""
