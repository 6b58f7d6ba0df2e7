"""What the root command hands to every subcommand: the global flags, the settings resolved once,
and the store opened on first need (and closed when the command ends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from ..config import Settings, resolve

if TYPE_CHECKING:
    from ..auth import Auth
    from ..keys import Keyring
    from ..store import Store
    from ..users import Users


@dataclass
class State:
    flags: dict[str, object] = field(default_factory=dict)
    debug: bool = False
    no_color: bool = False
    _settings: Settings | None = None
    _store: Store | None = None
    _keyring: Keyring | None = None
    _auth: Auth | None = None

    def settings(self, **overrides: object) -> Settings:
        """Resolve once. ``overrides`` are command flags that map to settings (``--leeway``)."""
        if overrides:
            self.flags.update({k: v for k, v in overrides.items() if v is not None})
            self._settings = None
        if self._settings is None:
            self._settings = resolve(self.flags)
        return self._settings

    def store(self) -> Store:
        if self._store is None:
            from ..store import open_store

            s = self.settings()
            self._store = open_store(s.db, db_name=s.db_name, source=s.source("db"))
        return self._store

    def keyring(self) -> Keyring:
        """The keyring, created on first need (said once on stderr)."""
        if self._keyring is None:
            from ..keys import open_keyring
            from .output import note

            self._keyring = open_keyring(self.settings(), on_create=note)
        return self._keyring

    def auth(self) -> Auth:
        if self._auth is None:
            from ..auth import Auth

            self._auth = Auth(self.settings(), self.store(), self.keyring)
        return self._auth

    def users(self) -> Users:
        from ..users import Users

        return Users(self.store(), rounds=self.settings().bcrypt_rounds)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def get_state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):  # a subcommand app invoked on its own (tests of one noun)
        root.obj = State()
    state: State = root.obj
    return state
