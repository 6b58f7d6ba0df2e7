"""The MongoDB store (pymongo), compatible with the Express design's Mongoose ``User`` model.

* Users live in ``users`` with the model's field names; ``_id`` is an ObjectId; fields jwtctl
  does not know (``__v``, ``refreshToken``, ``avatar``…) are left untouched, and fields the model
  lacks (``roles``, ``disabled``, ``tokensValidAfter``) read as their defaults.
* Writes use majority write concern and retryable writes; server selection gives up after
  ``serverSelectionTimeoutMS`` (5 s unless the URL says otherwise) with an error naming the host.
* Rotation is one ``find_one_and_update`` on id + current hash + not revoked + not expired.
* Sessions carry ``endsAt`` (when they stop being usable); a TTL index removes them
  ``ENDED_SESSION_RETENTION`` after that.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import (
    ConfigurationError,
    DuplicateKeyError,
    InvalidURI,
    OperationFailure,
    PyMongoError,
)

from ..config import mask_url
from ..errors import ConfigError, StoreUnavailable, UserExists
from ..models import SESSION_FIELDS, USER_FIELDS, Session, User
from ..timeutil import ms
from . import ENDED_SESSION_RETENTION, LOGIN_FAILURE_WINDOW, IndexState, StoreStatus

Doc = dict[str, Any]
DEFAULT_SELECTION_TIMEOUT_MS = 5000
_TIME_ATTRS = {
    "tokens_valid_after", "created_at", "updated_at", "last_used_at", "expires_at",
    "absolute_expires_at", "rotated_at", "revoked_at",
}  # fmt: skip
# (collection, index name, keys, options) — names match what Mongoose would create.
_INDEXES: tuple[tuple[str, str, list[tuple[str, int]], dict[str, Any]], ...] = (
    ("users", "username_1", [("username", 1)], {"unique": True}),
    ("users", "email_1", [("email", 1)], {"unique": True}),
    ("sessions", "userId_1_createdAt_-1", [("userId", 1), ("createdAt", -1)], {}),
    ("sessions", "createdAt_-1", [("createdAt", -1)], {}),
    ("sessions", "endsAt_1", [("endsAt", 1)], {"expireAfterSeconds": ENDED_SESSION_RETENTION}),
    ("login_failures", "expiresAt_1", [("expiresAt", 1)], {"expireAfterSeconds": 0}),
)


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ms(ts), UTC)


def _ts(value: object) -> float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return ms(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _oid(text: str) -> ObjectId | str:
    return ObjectId(text) if ObjectId.is_valid(text) else text


def _user(doc: Doc) -> User:
    oid = doc["_id"]
    created = _ts(doc.get("createdAt"))
    if created is None and isinstance(oid, ObjectId):
        created = ms(oid.generation_time.timestamp())
    roles = doc.get("roles")
    return User(
        id=str(oid),
        username=str(doc.get("username", "")),
        email=str(doc.get("email", "")),
        password_hash=str(doc.get("password") or ""),
        full_name=str(doc.get("fullName") or ""),
        roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        disabled=bool(doc.get("disabled", False)),
        tokens_valid_after=_ts(doc.get("tokensValidAfter")),
        created_at=created or 0.0,
        updated_at=_ts(doc.get("updatedAt")) or created or 0.0,
    )


def _user_doc_value(attr: str, value: Any) -> Any:
    if attr in _TIME_ATTRS:
        return _dt(value)
    if attr == "roles":
        return list(value)
    if attr == "id":
        return _oid(value)
    return value


def _session(doc: Doc) -> Session:
    values: dict[str, Any] = {}
    for attr, key in SESSION_FIELDS.items():
        value = doc.get(key)
        if attr in _TIME_ATTRS:
            value = _ts(value)
        elif attr in ("id", "user_id"):
            value = str(value)
        values[attr] = value
    values["generation"] = int(values.get("generation") or 0)
    return Session(**values)


def _session_doc(s: Session) -> Doc:
    doc: Doc = {}
    for attr, key in SESSION_FIELDS.items():
        value = getattr(s, attr)
        if attr in _TIME_ATTRS:
            value = _dt(value)
        elif attr in ("id", "user_id"):
            value = _oid(value)
        doc[key] = value
    doc["endsAt"] = _dt(s.ended_at())
    return doc


def _hosts(url: str) -> str:
    hosts = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return hosts or "?"


class MongoStore:
    kind = "mongodb"

    def __init__(
        self,
        url: str,
        *,
        db_name: str = "jwtctl",
        source: str = "default",
        selection_timeout_ms: int | None = None,
    ) -> None:
        self.location = mask_url(url)
        self.hosts = _hosts(url)
        options: dict[str, Any] = {
            "w": "majority",
            "retryWrites": True,
            "retryReads": True,
            "tz_aware": True,
            "appname": "jwtctl",
        }
        lowered = url.lower()
        if selection_timeout_ms is not None or "serverselectiontimeoutms" not in lowered:
            options["serverSelectionTimeoutMS"] = (
                selection_timeout_ms or DEFAULT_SELECTION_TIMEOUT_MS
            )
        if "connecttimeoutms" not in lowered:
            options["connectTimeoutMS"] = DEFAULT_SELECTION_TIMEOUT_MS
        if "sockettimeoutms" not in lowered:
            options["socketTimeoutMS"] = 2 * DEFAULT_SELECTION_TIMEOUT_MS
        try:
            self.client: pymongo.MongoClient[Doc] = pymongo.MongoClient(url, **options)
            self.db = self.client.get_default_database(default=db_name)
        except InvalidURI as exc:
            raise ConfigError(source, f"bad MongoDB URL: {exc}") from exc
        except ConfigurationError as exc:
            if "DNS" in str(exc) or "resolution" in str(exc):
                raise StoreUnavailable(
                    self.location, f"cannot resolve {self.hosts}: {exc}"
                ) from exc
            raise ConfigError(source, f"bad MongoDB URL: {exc}") from exc
        self.location = f"{self.location} (database {self.db.name})"
        self.users: Collection[Doc] = self.db["users"]
        self.sessions: Collection[Doc] = self.db["sessions"]
        self.failures: Collection[Doc] = self.db["login_failures"]
        self._indexes_ready = False
        self._index_lock = threading.Lock()
        self._index_problems: dict[str, str] = {}

    # --- errors ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except DuplicateKeyError as exc:
            details = exc.details or {}
            pattern = details.get("keyPattern") or {}
            field = next(iter(pattern), None) or _field_from_message(str(exc))
            value = (details.get("keyValue") or {}).get(field, "")
            raise UserExists(field, str(value)) from exc
        except OperationFailure as exc:
            if exc.code in (13, 18):
                raise StoreUnavailable(self.location, f"not authorised: {exc}") from exc
            raise StoreUnavailable(self.location, f"MongoDB refused the operation: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(
                self.location, f"cannot reach {self.hosts}: {_short(str(exc))}"
            ) from exc

    def _ready(self) -> None:
        if not self._indexes_ready:
            with self._index_lock:
                if not self._indexes_ready:
                    self._create_indexes()
                    self._indexes_ready = True

    def _create_indexes(self) -> None:
        with self._translate():
            for coll, name, keys, opts in _INDEXES:
                try:
                    self.db[coll].create_index(keys, name=name, **opts)
                except OperationFailure as exc:
                    # 85/86: an index with these keys exists with other options (for example
                    # one Mongoose created). It still serves; report it in `db status`.
                    if exc.code not in (85, 86):
                        raise
                    self._index_problems[name] = f"exists with other options: {exc.details}"

    # --- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        self._indexes_ready = False
        self._ready()

    def ping(self) -> None:
        with self._translate():
            self.client.admin.command("ping")

    def status(self) -> StoreStatus:
        try:
            with self._translate():
                info = self.client.server_info()
                hello = self.client.admin.command("hello")
                present: dict[str, str] = {}
                for coll in ("users", "sessions", "login_failures"):
                    for ix in self.db[coll].list_indexes():
                        present[ix["name"]] = coll
                now = datetime.now(UTC)
                counts = {
                    "users": self.users.count_documents({}),
                    "sessions": self.sessions.count_documents({}),
                    "activeSessions": self.sessions.count_documents(
                        {
                            "revokedAt": None,
                            "expiresAt": {"$gt": now},
                            "absoluteExpiresAt": {"$gt": now},
                        }
                    ),
                }
        except StoreUnavailable as exc:
            return StoreStatus(self.kind, self.location, False, problem=exc.problem)
        topology = f"replica set {hello['setName']}" if hello.get("setName") else "standalone"
        version = f"MongoDB {info.get('version', '?')} ({topology})"
        indexes = tuple(
            IndexState(name, name in present, self._index_problems.get(name, ""))
            for _, name, _, _ in _INDEXES
        )
        return StoreStatus(self.kind, self.location, True, version, counts, indexes)

    def close(self) -> None:
        self.client.close()

    # --- users -------------------------------------------------------------------------------
    def insert_user(self, user: User) -> None:
        self._ready()
        doc = {USER_FIELDS[a]: _user_doc_value(a, getattr(user, a)) for a in USER_FIELDS}
        doc["__v"] = 0  # what Mongoose writes; keeps documents alike for the Express side
        with self._translate():
            self.users.insert_one(doc)

    def get_user(self, user_id: str) -> User | None:
        self._ready()
        with self._translate():
            doc = self.users.find_one({"_id": _oid(user_id)})
        return _user(doc) if doc else None

    def find_user(self, *, username: str | None = None, email: str | None = None) -> User | None:
        self._ready()
        if username is not None:
            query: Doc = {"username": username}
        elif email is not None:
            query = {"email": email}
        else:
            return None
        with self._translate():
            doc = self.users.find_one(query)
        return _user(doc) if doc else None

    @staticmethod
    def _search(search: str | None) -> Doc:
        if not search:
            return {}
        pattern = {"$regex": re.escape(search), "$options": "i"}
        return {"$or": [{"username": pattern}, {"email": pattern}, {"fullName": pattern}]}

    def list_users(
        self, *, search: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[User]:
        self._ready()
        with self._translate():
            cursor = self.users.find(self._search(search)).sort("username", 1).skip(offset)
            if limit is not None:
                cursor = cursor.limit(limit)
            return [_user(d) for d in cursor]

    def count_users(self, *, search: str | None = None) -> int:
        self._ready()
        with self._translate():
            return self.users.count_documents(self._search(search))

    def update_user(
        self, user_id: str, changes: Mapping[str, Any], *, if_password: str | None = None
    ) -> User | None:
        self._ready()
        query: Doc = {"_id": _oid(user_id)}
        if if_password is not None:
            query["password"] = if_password
        update = {USER_FIELDS[a]: _user_doc_value(a, v) for a, v in changes.items()}
        with self._translate():
            doc = self.users.find_one_and_update(
                query, {"$set": update}, return_document=ReturnDocument.AFTER
            )
        return _user(doc) if doc else None

    def delete_user(self, user_id: str) -> int | None:
        self._ready()
        oid = _oid(user_id)
        with self._translate():
            if self.users.delete_one({"_id": oid}).deleted_count == 0:
                return None
            return self.sessions.delete_many({"userId": oid}).deleted_count

    # --- sessions ----------------------------------------------------------------------------
    def insert_session(self, session: Session) -> None:
        self._ready()
        with self._translate():
            self.sessions.insert_one(_session_doc(session))

    def get_session(self, session_id: str) -> Session | None:
        self._ready()
        with self._translate():
            doc = self.sessions.find_one({"_id": _oid(session_id)})
        return _session(doc) if doc else None

    def rotate_session(
        self, session_id: str, *, jti_hash: str, new_jti_hash: str, now: float, expires_at: float
    ) -> Session | None:
        self._ready()
        when = _dt(now)
        with self._translate():
            doc = self.sessions.find_one_and_update(
                {
                    "_id": _oid(session_id),
                    "jtiHash": jti_hash,
                    "revokedAt": None,
                    "expiresAt": {"$gt": when},
                    "absoluteExpiresAt": {"$gt": when},
                },
                {
                    "$set": {
                        "jtiHash": new_jti_hash,
                        "prevJtiHash": jti_hash,
                        "rotatedAt": when,
                        "lastUsedAt": when,
                        "expiresAt": _dt(expires_at),
                        "endsAt": _dt(expires_at),
                    },
                    "$inc": {"generation": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
        return _session(doc) if doc else None

    def revoke_session(
        self,
        session_id: str,
        *,
        now: float,
        reason: str,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session | None:
        self._ready()
        when = _dt(now)
        with self._translate():
            doc = self.sessions.find_one_and_update(
                {"_id": _oid(session_id), "revokedAt": None},
                {
                    "$set": {
                        "revokedAt": when,
                        "revokeReason": reason,
                        "revokedIp": ip,
                        "revokedUserAgent": user_agent,
                        "endsAt": when,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
        return _session(doc) if doc else None

    def revoke_user_sessions(
        self, user_id: str, *, now: float, reason: str, created_before: float | None = None
    ) -> list[str]:
        self._ready()
        query: Doc = {"userId": _oid(user_id), "revokedAt": None}
        if created_before is not None:
            query["createdAt"] = {"$lt": _dt(created_before)}
        when = _dt(now)
        with self._translate():
            ids = [d["_id"] for d in self.sessions.find(query, {"_id": 1})]
            if ids:
                self.sessions.update_many(
                    {"_id": {"$in": ids}, "revokedAt": None},
                    {"$set": {"revokedAt": when, "revokeReason": reason, "endsAt": when}},
                )
        return [str(i) for i in ids]

    @staticmethod
    def _session_query(user_id: str | None, active_at: float | None) -> Doc:
        query: Doc = {}
        if user_id is not None:
            query["userId"] = _oid(user_id)
        if active_at is not None:
            when = _dt(active_at)
            query.update(
                {"revokedAt": None, "expiresAt": {"$gt": when}, "absoluteExpiresAt": {"$gt": when}}
            )
        return query

    def list_sessions(
        self,
        *,
        user_id: str | None = None,
        active_at: float | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        self._ready()
        with self._translate():
            cursor = self.sessions.find(self._session_query(user_id, active_at)).sort(
                [("createdAt", -1), ("_id", -1)]
            )
            if limit is not None:
                cursor = cursor.limit(limit)
            return [_session(d) for d in cursor]

    def count_sessions(self, *, active_at: float | None = None) -> int:
        self._ready()
        with self._translate():
            return self.sessions.count_documents(self._session_query(None, active_at))

    def prune_sessions(
        self, *, now: float, revoked_before: float, dry_run: bool = False
    ) -> tuple[int, int]:
        self._ready()
        when = _dt(now)
        expired: Doc = {
            "$or": [{"expiresAt": {"$lte": when}}, {"absoluteExpiresAt": {"$lte": when}}]
        }
        revoked: Doc = {
            "revokedAt": {"$ne": None, "$lt": _dt(revoked_before)},
            "expiresAt": {"$gt": when},
            "absoluteExpiresAt": {"$gt": when},
        }
        with self._translate():
            if dry_run:
                return self.sessions.count_documents(expired), self.sessions.count_documents(
                    revoked
                )
            return (
                self.sessions.delete_many(expired).deleted_count,
                self.sessions.delete_many(revoked).deleted_count,
            )

    # --- login failures ----------------------------------------------------------------------
    def add_login_failure(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        self._ready()
        start, cutoff = _dt(now), _dt(now - window)
        expires = _dt(now + max(window, LOGIN_FAILURE_WINDOW))
        with self._translate():
            for _ in range(5):
                doc = self.failures.find_one_and_update(
                    {"_id": key, "windowStart": {"$gt": cutoff}},
                    {"$inc": {"count": 1}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:
                    try:
                        doc = self.failures.find_one_and_update(
                            {
                                "_id": key,
                                "$or": [{"windowStart": {"$lte": cutoff}}, {"windowStart": None}],
                            },
                            {"$set": {"count": 1, "windowStart": start, "expiresAt": expires}},
                            upsert=True,
                            return_document=ReturnDocument.AFTER,
                        )
                    except DuplicateKeyError:
                        continue  # another process opened the window first: count in it
                if doc is not None:
                    return int(doc["count"]), _ts(doc["windowStart"]) or now
        raise StoreUnavailable(self.location, "login-failure counter kept changing; try again")

    def login_failures(self, key: str, *, now: float, window: float) -> tuple[int, float]:
        self._ready()
        with self._translate():
            doc = self.failures.find_one({"_id": key, "windowStart": {"$gt": _dt(now - window)}})
        if not doc:
            return 0, now
        return int(doc["count"]), _ts(doc["windowStart"]) or now

    def clear_login_failures(self, key: str) -> None:
        self._ready()
        with self._translate():
            self.failures.delete_one({"_id": key})


def _field_from_message(message: str) -> str:
    m = re.search(r"index: (\w+?)_1", message)
    return m.group(1) if m else "username"


def _short(text: str) -> str:
    """pymongo's selection errors carry a long topology description; keep the first part."""
    return text.split(", Timeout:", 1)[0].split(", Topology Description", 1)[0]
