"""The auth core in one object: users, sessions and tokens over one store and one keyring.
The CLI and the WSGI server are thin clients of this class."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .config import Settings
from .errors import AuthenticationFailed, Refused, TooManyAttempts
from .keys import Keyring, open_keyring
from .sessions import Issued, KeyringSource, Sessions
from .store import LOGIN_FAILURE_WINDOW, Store, open_store
from .timeutil import Clock, ms, system_clock
from .users import Users
from .validation import password_bytes


class Auth:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        keyring: KeyringSource,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.users = Users(store, rounds=settings.bcrypt_rounds, clock=clock)
        self.sessions = Sessions(settings, store, keyring, clock=clock)

    @property
    def keyring(self) -> Keyring:
        return self.sessions.keyring

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        on_key_create: Callable[[str], None] | None = None,
        clock: Clock = system_clock,
    ) -> Auth:
        keyring = open_keyring(settings, on_create=on_key_create, clock=clock)
        if store is None:
            store = open_store(settings.db, db_name=settings.db_name, source=settings.source("db"))
        return cls(settings, store, keyring, clock=clock)

    def login(
        self,
        identifier: object,
        password: object,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Issued:
        """Credentials to a new session. Failed attempts are counted per account in the store
        (unknown names count the same way); past the limit, TooManyAttempts even with the right
        password, until the 15-minute window ends. Invalid input (a password over 72 bytes, a
        non-string) raises InvalidInput before anything is counted or looked up."""
        password_bytes(password, for_new_password=False)
        user = self.users.find(identifier)
        key = f"user:{user.id}" if user else f"name:{str(identifier).strip().lower()}"
        now = ms(self.clock())
        failures, start = self.store.login_failures(key, now=now, window=LOGIN_FAILURE_WINDOW)
        if failures >= self.settings.login_max_failures:
            wait = math.ceil(start + LOGIN_FAILURE_WINDOW - now)
            raise TooManyAttempts(min(LOGIN_FAILURE_WINDOW, max(1, wait)))
        try:
            user = self.users.check_password(user, password)
        except AuthenticationFailed:
            self.store.add_login_failure(key, now=now, window=LOGIN_FAILURE_WINDOW)
            raise
        if failures:
            self.store.clear_login_failures(key)
        try:
            return self.sessions.start(user, ip=ip, user_agent=user_agent)
        except (
            Refused
        ) as exc:  # disabled or changed while logging in: same answer as a bad password
            raise AuthenticationFailed() from exc

    def issue(
        self,
        user_ref: str,
        *,
        ttl: int | None = None,
        claims: Mapping[str, Any] | None = None,
        user_agent: str = "jwtctl",
    ) -> Issued:
        """`jwtctl token issue`: a real, revocable session for an enabled user."""
        user = self.users.get(user_ref)
        return self.sessions.start(user, user_agent=user_agent, access_ttl=ttl, extra_claims=claims)

    def close(self) -> None:
        self.store.close()
