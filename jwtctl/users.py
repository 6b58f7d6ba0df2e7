"""Users: create, find, change password, disable, delete, authenticate.

Changing the password (unless sessions are kept) or disabling a user ends every session of the
user and moves ``tokensValidAfter``, so access tokens already handed out die as well. Deleting a
user deletes their sessions with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import passwords, validation
from .errors import AuthenticationFailed, InvalidInput, UserExists, UserNotFound
from .models import User, is_id, new_id
from .store import Store
from .timeutil import Clock, ms, system_clock


@dataclass(frozen=True)
class Change:
    """What a change did: the user afterwards, and how many sessions it ended."""

    user: User
    sessions_ended: int


class Users:
    def __init__(self, store: Store, *, rounds: int, clock: Clock = system_clock) -> None:
        self.store = store
        self.rounds = rounds
        self.clock = clock

    def _now(self) -> float:
        return ms(self.clock())

    # --- lookup ------------------------------------------------------------------------------
    def find(self, ref: object) -> User | None:
        """A user by id, username or email (normalised as stored), or None."""
        if not isinstance(ref, str):
            return None
        key = ref.strip().lower()
        if not key:
            return None
        if is_id(key) and (user := self.store.get_user(key)) is not None:
            return user
        if "@" in key:
            return self.store.find_user(email=key)
        return self.store.find_user(username=key)

    def get(self, ref: str) -> User:
        if not ref.strip():
            raise InvalidInput("user", "is empty (give a username, email or id)")
        user = self.find(ref)
        if user is None:
            raise UserNotFound(ref.strip())
        return user

    def list(self, *, search: str | None = None, limit: int | None = None) -> list[User]:
        return self.store.list_users(search=search or None, limit=limit)

    def count(self, *, search: str | None = None) -> int:
        return self.store.count_users(search=search or None)

    # --- changes -----------------------------------------------------------------------------
    def create(
        self,
        *,
        username: object,
        email: object,
        password: object,
        full_name: object = "",
        roles: Sequence[str] = (),
    ) -> User:
        """Validate everything first, refuse duplicates before paying for bcrypt, then insert.
        The store's unique indexes stay the real guard against a concurrent duplicate."""
        name = validation.username(username)
        mail = validation.email(email)
        fname = validation.full_name(full_name)
        role_list = validation.roles(list(roles))
        validation.password_bytes(password, for_new_password=True)
        if self.store.find_user(username=name) is not None:
            raise UserExists("username", name)
        if self.store.find_user(email=mail) is not None:
            raise UserExists("email", mail)
        hashed = passwords.hash_password(password, self.rounds)
        now = self._now()
        user = User(
            id=new_id(),
            username=name,
            email=mail,
            password_hash=hashed,
            full_name=fname,
            roles=role_list,
            created_at=now,
            updated_at=now,
        )
        self.store.insert_user(user)
        return user

    def _update(self, user: User, **changes: object) -> User:
        updated = self.store.update_user(user.id, changes)
        if updated is None:
            raise UserNotFound(user.username)
        return updated

    def _end_sessions(self, user: User, reason: str, now: float) -> int:
        """The one place where a user's sessions are ended because the user changed."""
        return len(self.store.revoke_user_sessions(user.id, now=now, reason=reason))

    def set_password(self, ref: str, password: object, *, keep_sessions: bool = False) -> Change:
        user = self.get(ref)
        hashed = passwords.hash_password(password, self.rounds)
        now = self._now()
        if keep_sessions:
            return Change(self._update(user, password_hash=hashed, updated_at=now), 0)
        updated = self._update(user, password_hash=hashed, updated_at=now, tokens_valid_after=now)
        return Change(updated, self._end_sessions(user, "password-changed", now))

    def set_disabled(self, ref: str, disabled: bool) -> Change:
        user = self.get(ref)
        now = self._now()
        if not disabled:
            return Change(self._update(user, disabled=False, updated_at=now), 0)
        updated = self._update(user, disabled=True, updated_at=now, tokens_valid_after=now)
        return Change(updated, self._end_sessions(user, "user-disabled", now))

    def delete(self, ref: str) -> Change:
        user = self.get(ref)
        ended = self.store.delete_user(user.id)
        if ended is None:
            raise UserNotFound(ref.strip())
        return Change(user, ended)

    # --- authentication ----------------------------------------------------------------------
    def authenticate(self, identifier: object, password: object) -> User:
        """The user whose username or email is ``identifier`` and whose password matches.
        Unknown, disabled and wrong-password all raise the same AuthenticationFailed after the
        same bcrypt work; an invalid password (non-string, NUL, over 72 bytes) raises
        InvalidInput before any lookup."""
        validation.password_bytes(password, for_new_password=False)
        return self.check_password(self.find(identifier), password)

    def check_password(self, user: User | None, password: object) -> User:
        """Check ``password`` against ``user`` (None: an unknown user, checked against a dummy
        hash of the same cost). A hash of another cost than configured is replaced on success."""
        ok = passwords.check_password(password, user.password_hash if user else None, self.rounds)
        if user is None or not ok or user.disabled:
            raise AuthenticationFailed()
        if passwords.needs_rehash(user.password_hash, self.rounds):
            try:
                new_hash = passwords.hash_password(password, self.rounds)
            except InvalidInput:
                return user  # shorter than today's minimum: keep the old hash, still valid
            rehashed = self.store.update_user(
                user.id, {"password_hash": new_hash}, if_password=user.password_hash
            )
            return rehashed or user
        return user
