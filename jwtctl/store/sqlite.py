"""The embedded SQLite store: safe for several threads and several processes on one file.

* One connection per thread (sqlite3 connections are not shared), WAL journal so readers never
  block the writer, and a busy timeout so writers queue instead of failing.
* Every compare-and-set is one conditional statement checked by its result (``RETURNING``);
  changes to more than one table run inside ``BEGIN IMMEDIATE`` so they cannot deadlock.
* The file is created with mode 0600 (it holds password hashes) in a 0700 folder.
* ``sqlite3`` errors become StoreUnavailable / UserExists here and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..config import sqlite_url
from ..errors import StoreUnavailable, UserExists
from ..models import SESSION_FIELDS, USER_FIELDS, Session, User
from . import IndexState, StoreStatus

BUSY_TIMEOUT_S = 5.0
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    _id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    fullName TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    tokensValidAfter REAL,
    createdAt REAL NOT NULL,
    updatedAt REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username ON users(username);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(email);
CREATE TABLE IF NOT EXISTS sessions (
    _id TEXT PRIMARY KEY,
    userId TEXT NOT NULL,
    jtiHash TEXT NOT NULL,
    prevJtiHash TEXT,
    rotatedAt REAL,
    generation INTEGER NOT NULL DEFAULT 0,
    createdAt REAL NOT NULL,
    lastUsedAt REAL NOT NULL,
    expiresAt REAL NOT NULL,
    absoluteExpiresAt REAL NOT NULL,
    revokedAt REAL,
    revokeReason TEXT,
    revokedIp TEXT,
    revokedUserAgent TEXT,
    ip TEXT,
    userAgent TEXT
);
CREATE INDEX IF NOT EXISTS sessions_userId ON sessions(userId, createdAt);
CREATE INDEX IF NOT EXISTS sessions_createdAt ON sessions(createdAt);
CREATE TABLE IF NOT EXISTS login_failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    windowStart REAL NOT NULL
);
"""
_INDEXES = ("users_username", "users_email", "sessions_userId", "sessions_createdAt")
_USER_COLS = ", ".join(USER_FIELDS.values())
_SESSION_COLS = ", ".join(SESSION_FIELDS.values())
_SEARCH = "(instr(lower(username), ?) OR instr(lower(email), ?) OR instr(lower(fullName), ?))"


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["_id"],
        username=row["username"],
        email=row["email"],
        password_hash=row["password"],
        full_name=row["fullName"],
        roles=tuple(json.loads(row["roles"])),
        disabled=bool(row["disabled"]),
        tokens_valid_after=row["tokensValidAfter"],
        created_at=row["createdAt"],
        updated_at=row["updatedAt"],
    )


def _session(row: sqlite3.Row) -> Session:
    return Session(**{attr: row[col] for attr, col in SESSION_FIELDS.items()})


def _user_value(attr: str, value: Any) -> Any:
    if attr == "roles":
        return json.dumps(list(value))
    if attr == "disabled":
        return int(bool(value))
    return value


class SQLiteStore:
    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        busy_timeout: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.busy_timeout = BUSY_TIMEOUT_S if busy_timeout is None else busy_timeout
        self.location = sqlite_url(self.path) + ("?mode=ro" if read_only else "")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._schema_ready = False

    # --- connections and errors --------------------------------------------------------------
    def _fail(self, problem: str) -> StoreUnavailable:
        return StoreUnavailable(self.location, problem)

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            if not self.path.exists():
                raise self._fail(f"{self.path} does not exist")
            uri = f"file:{quote(str(self.path))}?mode=ro"
        else:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
            except OSError as exc:
                raise self._fail(f"cannot create {self.path}: {exc.strerror}") from exc
            uri = f"file:{quote(str(self.path))}?mode=rw"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        with self._translate():
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if not self.read_only:
                self._set_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching the journal mode needs a moment with no other writer; the busy handler does
        # not cover it, so retry briefly when another process is initialising the same file.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        if not self._schema_ready:
            self._ensure_schema(conn)
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        if self.read_only:
            self._schema_ready = True
            return
        with self._translate():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                # Statement by statement: executescript() would commit our transaction early.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            elif version > SCHEMA_VERSION:
                raise self._fail(
                    f"schema version {version} is newer than this jwtctl knows ({SCHEMA_VERSION}); "
                    "upgrade jwtctl"
                )
        self._schema_ready = True

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            for field in ("username", "email"):
                if f"users.{field}" in text:
                    raise UserExists(field, "") from exc
            raise self._fail(f"integrity error: {text}") from exc
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise self._fail(
                    f"database is locked (still busy after {self.busy_timeout:g} s)"
                ) from exc
            if "readonly" in text or "read-only" in text:
                raise self._fail("the database is read-only") from exc
            if "no such table" in text:
                raise self._fail("the database has no jwtctl tables; run `jwtctl db init`") from exc
            raise self._fail(text) from exc
        except sqlite3.DatabaseError as exc:
            raise self._fail(f"{self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so it never deadlocks."""
        conn = self._conn()
        with self._translate():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        conn = self._conn()
        with self._translate():
            return conn.execute(sql, params).fetchall()

    # --- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        self._conn()

    def ping(self) -> None:
        self._query("SELECT count(*) FROM sqlite_master")

    def status(self) -> StoreStatus:
        try:
            conn = self._conn()
            with self._translate():
                names = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
                }
                counts = {
                    "users": conn.execute("SELECT count(*) FROM users").fetchone()[0],
                    "sessions": conn.execute("SELECT count(*) FROM sessions").fetchone()[0],
                    "activeSessions": conn.execute(
                        "SELECT count(*) FROM sessions WHERE revokedAt IS NULL AND expiresAt > ?"
                        " AND absoluteExpiresAt > ?",
                        (time.time(), time.time()),
                    ).fetchone()[0],
                }
                journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        except StoreUnavailable as exc:
            return StoreStatus(self.kind, self.location, False, problem=exc.problem)
        indexes = tuple(IndexState(n, n in names) for n in _INDEXES)
        version = f"SQLite {sqlite3.sqlite_version}, journal {journal}, schema {SCHEMA_VERSION}"
        return StoreStatus(self.kind, self.location, True, version, counts, indexes)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- users -------------------------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        values = [_user_value(attr, getattr(user, attr)) for attr in USER_FIELDS]
        try:
            self._query(
                f"INSERT INTO users ({_USER_COLS}) VALUES ({', '.join('?' * len(values))})", values
            )
        except UserExists as exc:
            raise UserExists(exc.field, getattr(user, exc.field)) from None

    def get_user(self, user_id: str) -> User | None:
        rows = self._query(f"SELECT {_USER_COLS} FROM users WHERE _id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def find_user(self, *, username: str | None = None, email: str | None = None) -> User | None:
        if username is not None:
            rows = self._query(f"SELECT {_USER_COLS} FROM users WHERE username = ?", (username,))
        elif email is not None:
            rows = self._query(f"SELECT {_USER_COLS} FROM users WHERE email = ?", (email,))
        else:
            return None
        return _user(rows[0]) if rows else None

    def list_users(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[User]:
        where, params = self._search(search)
        params += [-1 if limit is None else limit, offset]
        rows = self._query(
            f"SELECT {_USER_COLS} FROM users {where} ORDER BY username LIMIT ? OFFSET ?", params
        )
        return [_user(r) for r in rows]

    @staticmethod
    def _search(search: str | None) -> tuple[str, list[Any]]:
        if not search:
            return "", []
        needle = search.lower()
        return f"WHERE {_SEARCH}", [needle, needle, needle]

    def count_users(self, *, search: str | None = None) -> int:
        where, params = self._search(search)
        return int(self._query(f"SELECT count(*) FROM users {where}", params)[0][0])

    def update_user(
        self, user_id: str, changes: Mapping[str, Any], *, if_password: str | None = None
    ) -> User | None:
        if not changes:
            return self.get_user(user_id)
        sets = ", ".join(f"{USER_FIELDS[attr]} = ?" for attr in changes)
        params = [_user_value(attr, v) for attr, v in changes.items()] + [user_id]
        cond = ""
        if if_password is not None:
            cond = " AND password = ?"
            params.append(if_password)
        try:
            rows = self._query(
                f"UPDATE users SET {sets} WHERE _id = ?{cond} RETURNING {_USER_COLS}", params
            )
        except UserExists as exc:
            raise UserExists(exc.field, str(changes.get(exc.field, ""))) from None
        return _user(rows[0]) if rows else None

    def delete_user(self, user_id: str) -> int | None:
        with self._tx() as conn:
            if conn.execute("DELETE FROM users WHERE _id = ?", (user_id,)).rowcount == 0:
                return None
            return conn.execute("DELETE FROM sessions WHERE userId = ?", (user_id,)).rowcount

    # --- sessions ----------------------------------------------------------------------------
    def insert_session(self, session: Session) -> None:
        values = [getattr(session, attr) for attr in SESSION_FIELDS]
        self._query(
            f"INSERT INTO sessions ({_SESSION_COLS}) VALUES ({', '.join('?' * len(values))})",
            values,
        )

    def get_session(self, session_id: str) -> Session | None:
        rows = self._query(f"SELECT {_SESSION_COLS} FROM sessions WHERE _id = ?", (session_id,))
        return _session(rows[0]) if rows else None

    def rotate_session(
        self, session_id: str, *, jti_hash: str, new_jti_hash: str, now: float, expires_at: float
    ) -> Session | None:
        rows = self._query(
            "UPDATE sessions SET jtiHash = ?, prevJtiHash = jtiHash, rotatedAt = ?, lastUsedAt = ?,"
            " expiresAt = ?, generation = generation + 1"
            " WHERE _id = ? AND jtiHash = ? AND revokedAt IS NULL AND expiresAt > ?"
            f" AND absoluteExpiresAt > ? RETURNING {_SESSION_COLS}",
            (new_jti_hash, now, now, expires_at, session_id, jti_hash, now, now),
        )
        return _session(rows[0]) if rows else None

    def revoke_session(
        self,
        session_id: str,
        *,
        now: float,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session | None:
        rows = self._query(
            "UPDATE sessions SET revokedAt = ?, revokeReason = ?, revokedIp = ?,"
            " revokedUserAgent = ?"
            f" WHERE _id = ? AND revokedAt IS NULL RETURNING {_SESSION_COLS}",
            (now, reason, ip, user_agent, session_id),
        )
        return _session(rows[0]) if rows else None

    def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, created_before: float | None = None
    ) -> list[str]:
        cond, params = "", [now, reason, user_id]
        if created_before is not None:
            cond = " AND createdAt < ?"
            params.append(created_before)
        rows = self._query(
            "UPDATE sessions SET revokedAt = ?, revokeReason = ?"
            f" WHERE userId = ? AND revokedAt IS NULL{cond} RETURNING _id",
            params,
        )
        return [r[0] for r in rows]

    def list_sessions(
        self,
        *,
        user_id: str | None = None,
        active_at: float | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        conds, params = self._session_filter(user_id, active_at)
        params.append(-1 if limit is None else limit)
        rows = self._query(
            f"SELECT {_SESSION_COLS} FROM sessions {conds}"
            " ORDER BY createdAt DESC, _id DESC LIMIT ?",
            params,
        )
        return [_session(r) for r in rows]

    @staticmethod
    def _session_filter(user_id: str | None, active_at: float | None) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if user_id is not None:
            conds.append("userId = ?")
            params.append(user_id)
        if active_at is not None:
            conds.append("revokedAt IS NULL AND expiresAt > ? AND absoluteExpiresAt > ?")
            params += [active_at, active_at]
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def count_sessions(self, *, active_at: float | None = None) -> int:
        conds, params = self._session_filter(None, active_at)
        return int(self._query(f"SELECT count(*) FROM sessions {conds}", params)[0][0])

    def prune_sessions(
        self, *, now: float, revoked_before: float, dry_run: bool = False
    ) -> tuple[int, int]:
        expired = "(expiresAt <= ? OR absoluteExpiresAt <= ?)"
        revoked = f"(revokedAt IS NOT NULL AND revokedAt < ? AND NOT {expired})"
        with self._tx() as conn:
            counts = conn.execute(
                f"SELECT (SELECT count(*) FROM sessions WHERE {expired}),"
                f" (SELECT count(*) FROM sessions WHERE {revoked})",
                (now, now, revoked_before, now, now),
            ).fetchone()
            if not dry_run:
                conn.execute(
                    f"DELETE FROM sessions WHERE {expired} OR {revoked}",
                    (now, now, revoked_before, now, now),
                )
        return int(counts[0]), int(counts[1])

    # --- login failures ----------------------------------------------------------------------
    def add_login_failure(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        cutoff = now - window
        rows = self._query(
            "INSERT INTO login_failures (key, count, windowStart) VALUES (?, 1, ?)"
            " ON CONFLICT(key) DO UPDATE SET"
            "   count = CASE WHEN windowStart > ? THEN count + 1 ELSE 1 END,"
            "   windowStart = CASE WHEN windowStart > ? THEN windowStart ELSE ? END"
            " RETURNING count, windowStart",
            (key, now, cutoff, cutoff, now),
        )
        return int(rows[0][0]), float(rows[0][1])

    def login_failures(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        rows = self._query(
            "SELECT count, windowStart FROM login_failures WHERE key = ? AND windowStart > ?",
            (key, now - window),
        )
        return (int(rows[0][0]), float(rows[0][1])) if rows else (0, now)

    def clear_login_failures(self, key: str) -> None:
        self._query("DELETE FROM login_failures WHERE key = ?", (key,))
