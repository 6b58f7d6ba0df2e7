"""The records the core and the stores exchange. Times are POSIX seconds rounded to the
millisecond (what MongoDB keeps). Field names follow SPEC §7 in their stored (camelCase) form
through ``USER_FIELDS`` / ``SESSION_FIELDS``."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from .timeutil import iso

SessionState = Literal["active", "expired", "revoked"]

_counter_lock = threading.Lock()
_counter = int.from_bytes(os.urandom(3), "big")
_process_random = os.urandom(5)
_process_pid = os.getpid()


def new_id() -> str:
    """A 24-hex id in ObjectId layout (4-byte time, 5 random bytes per process, 3-byte counter),
    so the same ids work as MongoDB ObjectIds and sort by creation time in every store."""
    global _counter, _process_random, _process_pid  # noqa: PLW0603 - one counter per process
    with _counter_lock:
        if os.getpid() != _process_pid:  # forked: a new process needs its own random part
            _process_pid, _process_random = os.getpid(), os.urandom(5)
        _counter = (_counter + 1) & 0xFFFFFF
        count = _counter
    return (int(time.time()).to_bytes(4, "big") + _process_random + count.to_bytes(3, "big")).hex()


def is_id(text: str) -> bool:
    return len(text) == 24 and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    password_hash: str
    full_name: str = ""
    roles: tuple[str, ...] = ()
    disabled: bool = False
    tokens_valid_after: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def public(self) -> dict[str, Any]:
        """The public user of SPEC §6: never the hash, refresh tokens or session data."""
        return {
            "_id": self.id,
            "username": self.username,
            "email": self.email,
            "fullName": self.full_name,
            "roles": list(self.roles),
            "disabled": self.disabled,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


# python attribute -> stored field name (MongoDB document key, SQLite column)
USER_FIELDS: dict[str, str] = {
    "id": "_id",
    "username": "username",
    "email": "email",
    "password_hash": "password",
    "full_name": "fullName",
    "roles": "roles",
    "disabled": "disabled",
    "tokens_valid_after": "tokensValidAfter",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}


@dataclass(frozen=True)
class Session:
    """One login: the server-side record of one refresh-token chain. ``jti_hash`` is the SHA-256
    of the current refresh token's ``jti``; ``prev_jti_hash`` and ``rotated_at`` describe the one
    before it, for the concurrent-retry grace window. The token itself is never stored."""

    id: str
    user_id: str
    jti_hash: str
    created_at: float
    last_used_at: float
    expires_at: float
    absolute_expires_at: float
    generation: int = 0
    prev_jti_hash: str | None = None
    rotated_at: float | None = None
    revoked_at: float | None = None
    revoke_reason: str | None = None
    revoked_ip: str | None = None
    revoked_user_agent: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def state(self, now: float) -> SessionState:
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at or now >= self.absolute_expires_at:
            return "expired"
        return "active"

    def ended_at(self) -> float:
        """When the session stopped (or will stop) being usable."""
        end = min(self.expires_at, self.absolute_expires_at)
        return min(end, self.revoked_at) if self.revoked_at is not None else end

    def public(self, now: float, username: str | None = None) -> dict[str, Any]:
        """The session object of SPEC §3 (no token hashes)."""

        def t(v: float | None) -> str | None:
            return None if v is None else iso(v)

        return {
            "id": self.id,
            "userId": self.user_id,
            "username": username,
            "createdAt": t(self.created_at),
            "lastUsedAt": t(self.last_used_at),
            "expiresAt": t(self.expires_at),
            "absoluteExpiresAt": t(self.absolute_expires_at),
            "revokedAt": t(self.revoked_at),
            "revokeReason": self.revoke_reason,
            "ip": self.ip,
            "userAgent": self.user_agent,
            "generation": self.generation,
            "state": self.state(now),
        }


SESSION_FIELDS: dict[str, str] = {
    "id": "_id",
    "user_id": "userId",
    "jti_hash": "jtiHash",
    "created_at": "createdAt",
    "last_used_at": "lastUsedAt",
    "expires_at": "expiresAt",
    "absolute_expires_at": "absoluteExpiresAt",
    "generation": "generation",
    "prev_jti_hash": "prevJtiHash",
    "rotated_at": "rotatedAt",
    "revoked_at": "revokedAt",
    "revoke_reason": "revokeReason",
    "revoked_ip": "revokedIp",
    "revoked_user_agent": "revokedUserAgent",
    "ip": "ip",
    "user_agent": "userAgent",
}
