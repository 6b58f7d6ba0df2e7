"""Shell completion of user names and session ids from the store.

A tab press must never fail or hang: errors give no suggestions, and a MongoDB store is asked
with a one-second server-selection timeout."""

from __future__ import annotations

import time
from typing import Any

import typer

LIMIT = 50


def _store(ctx: typer.Context) -> Any:
    from ..config import resolve
    from ..store import open_store

    flags = {k: v for k, v in ctx.find_root().params.items() if k in ("db", "home", "config") and v}
    settings = resolve({k: str(v) for k, v in flags.items()})
    return open_store(settings.db, db_name=settings.db_name, selection_timeout_ms=1000)


def users(ctx: typer.Context, incomplete: str) -> list[str]:
    """Usernames starting with what was typed."""
    try:
        store = _store(ctx)
        try:
            prefix = incomplete.strip().lower()
            found = store.list_users(search=prefix or None, limit=LIMIT * 4)
            return [u.username for u in found if u.username.startswith(prefix)][:LIMIT]
        finally:
            store.close()
    except Exception:  # completion never fails
        return []


def sessions(ctx: typer.Context, incomplete: str) -> list[str]:
    """Ids of active sessions starting with what was typed, newest first."""
    try:
        store = _store(ctx)
        try:
            active = store.list_sessions(active_at=time.time(), limit=500)
            return [s.id for s in active if s.id.startswith(incomplete.strip().lower())][:LIMIT]
        finally:
            store.close()
    except Exception:  # completion never fails
        return []
