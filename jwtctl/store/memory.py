"""The in-memory store: dictionaries under one lock. Every method is atomic."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import UserExists
from ..models import Session, User
from . import StoreStatus


def _matches(user: User, needle: str) -> bool:
    return any(needle in v.lower() for v in (user.username, user.email, user.full_name))


class MemoryStore:
    kind = "memory"
    location = "memory:"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._by_username: dict[str, str] = {}
        self._by_email: dict[str, str] = {}
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, tuple[int, float]] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        return None

    def ping(self) -> None:
        return None

    def status(self) -> StoreStatus:
        with self._lock:
            counts = {"users": len(self._users), "sessions": len(self._sessions)}
        return StoreStatus(self.kind, self.location, True, version=None, counts=counts)

    def close(self) -> None:
        return None

    # --- users -------------------------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        with self._lock:
            if user.username in self._by_username:
                raise UserExists("username", user.username)
            if user.email in self._by_email:
                raise UserExists("email", user.email)
            self._users[user.id] = user
            self._by_username[user.username] = user.id
            self._by_email[user.email] = user.id

    def get_user(self, user_id: str) -> User | None:
        with self._lock:
            return self._users.get(user_id)

    def find_user(self, *, username: str | None = None, email: str | None = None) -> User | None:
        with self._lock:
            if username is not None:
                uid = self._by_username.get(username)
            elif email is not None:
                uid = self._by_email.get(email)
            else:
                return None
            return self._users.get(uid) if uid else None

    def list_users(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[User]:
        with self._lock:
            users = sorted(self._users.values(), key=lambda u: u.username)
        if search:
            users = [u for u in users if _matches(u, search.lower())]
        users = users[offset:]
        return users[:limit] if limit is not None else users

    def count_users(self, *, search: str | None = None) -> int:
        with self._lock:
            if not search:
                return len(self._users)
            return sum(1 for u in self._users.values() if _matches(u, search.lower()))

    def update_user(
        self, user_id: str, changes: Mapping[str, Any], *, if_password: str | None = None
    ) -> User | None:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or (if_password is not None and user.password_hash != if_password):
                return None
            new = dataclasses.replace(user, **changes)
            indexes = (("username", self._by_username), ("email", self._by_email))
            moved = [
                (attr, index)
                for attr, index in indexes
                if getattr(user, attr) != getattr(new, attr)
            ]
            for attr, index in moved:
                if getattr(new, attr) in index:
                    raise UserExists(attr, getattr(new, attr))
            for attr, index in moved:
                del index[getattr(user, attr)]
                index[getattr(new, attr)] = user_id
            self._users[user_id] = new
            return new

    def delete_user(self, user_id: str) -> int | None:
        with self._lock:
            user = self._users.pop(user_id, None)
            if user is None:
                return None
            del self._by_username[user.username]
            del self._by_email[user.email]
            doomed = [sid for sid, s in self._sessions.items() if s.user_id == user_id]
            for sid in doomed:
                del self._sessions[sid]
            return len(doomed)

    # --- sessions ----------------------------------------------------------------------------
    def insert_session(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.id] = session

    def get_session(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def rotate_session(
        self, session_id: str, *, jti_hash: str, new_jti_hash: str, now: float, expires_at: float
    ) -> Session | None:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None or s.jti_hash != jti_hash or s.state(now) != "active":
                return None
            new = dataclasses.replace(
                s,
                jti_hash=new_jti_hash,
                prev_jti_hash=jti_hash,
                rotated_at=now,
                last_used_at=now,
                expires_at=expires_at,
                generation=s.generation + 1,
            )
            self._sessions[session_id] = new
            return new

    def revoke_session(
        self,
        session_id: str,
        *,
        now: float,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session | None:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None or s.revoked_at is not None:
                return None
            new = dataclasses.replace(
                s,
                revoked_at=now,
                revoke_reason=reason,
                revoked_ip=ip,
                revoked_user_agent=user_agent,
            )
            self._sessions[session_id] = new
            return new

    def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, created_before: float | None = None
    ) -> list[str]:
        with self._lock:
            ids = [
                s.id
                for s in self._sessions.values()
                if s.user_id == user_id
                and s.revoked_at is None
                and (created_before is None or s.created_at < created_before)
            ]
            for sid in ids:
                s = self._sessions[sid]
                self._sessions[sid] = dataclasses.replace(s, revoked_at=now, revoke_reason=reason)
            return ids

    def list_sessions(
        self,
        *,
        user_id: str | None = None,
        active_at: float | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        with self._lock:
            found = [
                s
                for s in self._sessions.values()
                if (user_id is None or s.user_id == user_id)
                and (active_at is None or s.state(active_at) == "active")
            ]
        found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return found[:limit] if limit is not None else found

    def count_sessions(self, *, active_at: float | None = None) -> int:
        with self._lock:
            if active_at is None:
                return len(self._sessions)
            return sum(1 for s in self._sessions.values() if s.state(active_at) == "active")

    def prune_sessions(
        self, *, now: float, revoked_before: float, dry_run: bool = False
    ) -> tuple[int, int]:
        with self._lock:
            expired = [
                s.id
                for s in self._sessions.values()
                if min(s.expires_at, s.absolute_expires_at) <= now
            ]
            revoked = [
                s.id
                for s in self._sessions.values()
                if s.revoked_at is not None
                and s.revoked_at < revoked_before
                and s.id not in expired
            ]
            if not dry_run:
                for sid in expired + revoked:
                    del self._sessions[sid]
            return len(expired), len(revoked)

    # --- login failures ----------------------------------------------------------------------
    def add_login_failure(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        with self._lock:
            count, start = self._failures.get(key, (0, now))
            if start <= now - window:
                count, start = 0, now
            self._failures[key] = (count + 1, start)
            return count + 1, start

    def login_failures(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        with self._lock:
            count, start = self._failures.get(key, (0, now))
            return (count, start) if start > now - window else (0, now)

    def clear_login_failures(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
