"""Storage behind one small Protocol, with three implementations: SQLite (the embedded default),
MongoDB (production) and memory (tests, throwaway servers). One contract test suite runs
unchanged against all three (tests/test_store_contract.py).

Every method that changes more than one record does so atomically where the store can, and each
compare-and-set is a single operation of the store (see ``rotate_session``). Store failures are
raised as :class:`jwtctl.errors.StoreUnavailable`; duplicates as :class:`jwtctl.errors.UserExists`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models import Session, User

LOGIN_FAILURE_WINDOW = 15 * 60
ENDED_SESSION_RETENTION = 7 * 86400
"""How long ended sessions are kept (for `sessions list --all` and reuse forensics) before the
MongoDB TTL index or `sessions prune` removes them."""


@dataclass(frozen=True)
class IndexState:
    name: str
    present: bool
    detail: str = ""


@dataclass(frozen=True)
class StoreStatus:
    kind: str
    location: str
    reachable: bool
    version: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    indexes: tuple[IndexState, ...] = ()
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "location": self.location,
            "reachable": self.reachable,
            "version": self.version,
            "counts": dict(self.counts),
            "indexes": [
                {"name": i.name, "present": i.present, "detail": i.detail} for i in self.indexes
            ],
            "problem": self.problem,
        }


class Store(Protocol):
    kind: str
    location: str
    """Where the store is, safe to print (no password)."""

    # --- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        """Create tables / indexes. Idempotent; also done on first use."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    def status(self) -> StoreStatus: ...

    def close(self) -> None: ...

    # --- users -------------------------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        """Raise UserExists(field) when the username or email is taken."""

    def get_user(self, user_id: str) -> User | None: ...

    def find_user(self, *, username: str | None = None, email: str | None = None) -> User | None:
        """Exact match on the normalised username or email."""

    def list_users(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[User]:
        """Ordered by username. ``search`` is a case-insensitive substring of username, email
        or full name; it is matched literally, never as a pattern or query."""

    def count_users(self, *, search: str | None = None) -> int: ...

    def update_user(
        self, user_id: str, changes: Mapping[str, Any], *, if_password: str | None = None
    ) -> User | None:
        """Apply ``changes`` (User attribute names) atomically. With ``if_password`` the change
        happens only if the stored hash is still that one. Returns the new record, or None when
        the user is gone or the condition failed."""

    def delete_user(self, user_id: str) -> int | None:
        """Delete the user and all their sessions. Returns the number of sessions deleted, or
        None when there was no such user."""

    # --- sessions ----------------------------------------------------------------------------
    def insert_session(self, session: Session) -> None: ...

    def get_session(self, session_id: str) -> Session | None: ...

    def rotate_session(
        self,
        session_id: str,
        *,
        jti_hash: str,
        new_jti_hash: str,
        now: float,
        expires_at: float,
    ) -> Session | None:
        """The compare-and-set of rotation, one atomic operation: if the session's current hash
        is ``jti_hash`` and it is neither revoked nor expired at ``now``, make ``new_jti_hash``
        current, remember the old one with ``rotated_at=now``, bump the generation, set
        ``last_used_at=now`` and the idle expiry ``expires_at``. Returns the new record, or None
        when the condition failed (some other request won, or the session ended)."""

    def revoke_session(
        self,
        session_id: str,
        *,
        now: float,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session | None:
        """Mark a not-yet-revoked session revoked. Returns the new record, or None when there is
        no such session or it was already revoked."""

    def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, created_before: float | None = None
    ) -> list[str]:
        """Revoke every not-yet-revoked session of the user (created before ``created_before``
        when given). Returns the ids revoked."""

    def list_sessions(
        self,
        *,
        user_id: str | None = None,
        active_at: float | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        """Newest first. With ``active_at``, only sessions neither revoked nor expired then."""

    def count_sessions(self, *, active_at: float | None = None) -> int: ...

    def prune_sessions(
        self, *, now: float, revoked_before: float, dry_run: bool = False
    ) -> tuple[int, int]:
        """Remove sessions expired (idle or absolute) at ``now``, and sessions revoked before
        ``revoked_before``. Returns (expired, revoked) counts; ``dry_run`` only counts."""

    # --- login failures (per account, shared by every server process) -----------------------
    def add_login_failure(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        """Count one failure in the fixed window that starts at the first failure, atomically.
        Returns (failures in the window, window start)."""

    def login_failures(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        """(failures in the current window, window start); (0, now) when there is none."""

    def clear_login_failures(self, key: str) -> None: ...


def open_store(
    url: str,
    *,
    db_name: str = "jwtctl",
    source: str = "default",
    selection_timeout_ms: int | None = None,
) -> Store:
    """Open the store a normalised URL names (see config). Heavy drivers load only here."""
    if url == "memory:":
        from .memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore

        path, _, query = url[len("sqlite:") :].partition("?")
        options = dict(o.partition("=")[::2] for o in query.split("&") if o)
        timeout = float(options["timeout"]) if "timeout" in options else None
        return SQLiteStore(
            "/" + path.lstrip("/"), read_only=options.get("mode") == "ro", busy_timeout=timeout
        )
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo import MongoStore

        return MongoStore(
            url, db_name=db_name, source=source, selection_timeout_ms=selection_timeout_ms
        )
    raise ValueError(f"not a store URL: {url!r}")
