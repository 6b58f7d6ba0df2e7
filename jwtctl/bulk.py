"""Bulk import and export of users, as JSON Lines or CSV.

A row has ``username``, ``email``, ``fullName`` and either ``password`` (plain text, hashed
here) or ``passwordHash`` (a bcrypt hash, ``$2a$``/``$2b$``/``$2y$``, kept as it is so users of
another system keep their passwords). A ``password`` that is itself a complete bcrypt hash (as
in a ``mongoexport`` of the Express design's users) is kept as a hash too. Optional: ``roles``
(a JSON list, or ``;``-separated in CSV), ``disabled``, ``_id`` (24 hex digits, or
``{"$oid": …}``), which keeps the user's id.

Every row is written by one store operation, so an interrupted import leaves each row fully
written or not at all, and running it again (conflicts are skipped by default) finishes the job.
Plain passwords are hashed on a pool of threads, one per core: bcrypt releases the GIL.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from . import passwords, validation
from .errors import InvalidInput, UserExists
from .models import User, is_id, new_id
from .store import Store
from .timeutil import Clock, ms, system_clock

Format = Literal["jsonl", "csv"]
OnConflict = Literal["skip", "update", "fail"]
CSV_COLUMNS = ("username", "email", "fullName", "passwordHash", "roles", "disabled", "_id")
BATCH = 64


@dataclass(frozen=True)
class Row:
    line: int
    username: str
    email: str
    full_name: str
    roles: tuple[str, ...]
    disabled: bool
    user_id: str | None
    password: str | None = None  # plain text, to hash
    password_hash: str | None = None  # kept as it is


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class Summary:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[BadRow] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


class ImportConflict(UserExists):
    """--on-conflict fail met an existing user."""

    def __init__(self, line: int, exc: UserExists) -> None:
        super().__init__(exc.field, exc.value)
        self.message = f"line {line}: {exc.message} (--on-conflict fail stops here)"
        self.line = line


# --- reading -----------------------------------------------------------------------------------


def detect_format(name: str | None, first_line: str) -> Format:
    if name:
        lowered = name.lower()
        if lowered.endswith((".jsonl", ".ndjson", ".json")):
            return "jsonl"
        if lowered.endswith(".csv"):
            return "csv"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def read_rows(stream: TextIO, fmt: Format) -> Iterator[Row | BadRow]:
    """Parse and validate rows; a bad row becomes a BadRow with its line number and reason."""
    if fmt == "jsonl":
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
            except ValueError as exc:
                yield BadRow(number, f"not valid JSON ({exc})")
                continue
            if not isinstance(doc, dict):
                yield BadRow(number, "not a JSON object")
                continue
            yield _row(number, doc)
        return
    reader = csv.DictReader(stream)
    if not reader.fieldnames or not {"username", "email"} <= set(reader.fieldnames):
        yield BadRow(
            1, "the CSV header must name username, email, fullName, password or passwordHash"
        )
        return
    for doc in reader:
        yield _row(reader.line_num, {k: v for k, v in doc.items() if k is not None and v != ""})


def _row(line: int, doc: dict[str, Any]) -> Row | BadRow:
    try:
        return _validated(line, doc)
    except InvalidInput as exc:
        return BadRow(line, exc.message)


def _validated(line: int, doc: dict[str, Any]) -> Row:
    username = validation.username(doc.get("username"))
    email = validation.email(doc.get("email"))
    full_name = validation.full_name(doc.get("fullName", ""))
    raw_roles = doc.get("roles", [])
    if isinstance(raw_roles, str):
        raw_roles = [r for r in raw_roles.split(";") if r.strip()]
    roles = validation.roles(raw_roles)
    disabled = _flag(doc.get("disabled", False))
    user_id = _id(doc.get("_id"))
    plain, hashed = doc.get("password"), doc.get("passwordHash")
    if hashed is None and isinstance(plain, str) and passwords.is_bcrypt_hash(plain):
        plain, hashed = None, plain
    if hashed is not None:
        if not isinstance(hashed, str) or not passwords.is_bcrypt_hash(hashed):
            raise InvalidInput("passwordHash", "is not a bcrypt hash ($2a$, $2b$ or $2y$)")
        return Row(line, username, email, full_name, roles, disabled, user_id, password_hash=hashed)
    if plain is None:
        raise InvalidInput("password", "is missing (give password or passwordHash)")
    validation.password_bytes(plain, for_new_password=True)
    return Row(line, username, email, full_name, roles, disabled, user_id, password=plain)


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "1",
        "yes",
        "false",
        "0",
        "no",
        "",
    ):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidInput("disabled", "must be true or false")


def _id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("$oid"), str):
        value = value["$oid"]
    if isinstance(value, str) and is_id(value.lower()):
        return value.lower()
    raise InvalidInput("_id", "must be 24 hex digits")


# --- importing ---------------------------------------------------------------------------------


def import_users(
    store: Store,
    rows: Iterable[Row | BadRow],
    *,
    rounds: int,
    on_conflict: OnConflict = "skip",
    dry_run: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    clock: Clock = system_clock,
) -> Summary:
    """Write rows to the store in batches: validate, hash plain passwords in parallel, then
    write each row with one store operation. ``progress(n)`` is called as rows finish."""
    job = _Import(store, Summary(dry_run=dry_run), rounds, on_conflict, clock, progress)
    pool = ThreadPoolExecutor(
        max_workers=workers or os.cpu_count() or 1, thread_name_prefix="jwtctl-hash"
    )
    try:
        batch: list[Row | BadRow] = []
        for item in rows:
            batch.append(item)
            if len(batch) >= BATCH:
                job.batch(batch, pool)
                batch = []
        if batch:
            job.batch(batch, pool)
    finally:  # on Ctrl-C too: hashes not started yet are dropped, rows written stay written
        pool.shutdown(wait=True, cancel_futures=True)
    return job.summary


@dataclass
class _Import:
    store: Store
    summary: Summary
    rounds: int
    on_conflict: OnConflict
    clock: Clock
    progress: Callable[[int], None] | None
    seen: set[str] = field(default_factory=set)

    def batch(self, batch: list[Row | BadRow], pool: ThreadPoolExecutor) -> None:
        good = [r for r in batch if isinstance(r, Row)]
        for bad in (r for r in batch if isinstance(r, BadRow)):
            self.fail(bad.line, bad.reason)
        if self.summary.dry_run:
            for row in good:
                self.plan(row)
        else:
            plain = [r for r in good if r.password is not None]
            hashes = dict(zip((r.line for r in plain), pool.map(self.hash, plain), strict=True))
            for row in good:
                self.write(row, row.password_hash or hashes[row.line])
        if self.progress is not None:
            self.progress(len(batch))

    def hash(self, row: Row) -> str:
        return passwords.hash_password(row.password, self.rounds)

    def fail(self, line: int, reason: str) -> None:
        self.summary.failed += 1
        self.summary.errors.append(BadRow(line, reason))

    def plan(self, row: Row) -> None:
        """--dry-run: what would happen to this row (duplicates within the file count too)."""
        existing = self.store.find_user(username=row.username) or self.store.find_user(
            email=row.email
        )
        in_file = row.username in self.seen or row.email in self.seen
        self.seen.update((row.username, row.email))
        if existing is None and not in_file:
            self.summary.created += 1
        elif self.on_conflict == "update" and existing is not None:
            self.summary.updated += 1
        elif self.on_conflict == "fail":
            self.fail(row.line, f"user {row.username} already exists (--on-conflict fail)")
        else:
            self.summary.skipped += 1

    def write(self, row: Row, hashed: str) -> None:
        now = ms(self.clock())
        user = User(
            id=row.user_id or new_id(),
            username=row.username,
            email=row.email,
            password_hash=hashed,
            full_name=row.full_name,
            roles=row.roles,
            disabled=row.disabled,
            created_at=now,
            updated_at=now,
        )
        try:
            self.store.insert_user(user)
            self.summary.created += 1
            return
        except UserExists as exc:
            if self.on_conflict == "fail":
                raise ImportConflict(row.line, exc) from exc
            if self.on_conflict == "skip":
                self.summary.skipped += 1
                return
        existing = self.store.find_user(username=row.username)
        owner = self.store.find_user(email=row.email)
        if existing is None or (owner is not None and owner.id != existing.id):
            self.fail(row.line, f"email {row.email} belongs to another user; not updated")
            return
        changes: dict[str, Any] = {
            "email": row.email,
            "full_name": row.full_name,
            "password_hash": hashed,
            "roles": row.roles,
            "disabled": row.disabled,
            "updated_at": now,
        }
        if self.store.update_user(existing.id, changes) is None:
            self.fail(row.line, "the user was deleted during the import")
        else:
            self.summary.updated += 1


# --- exporting ---------------------------------------------------------------------------------


def export_users(store: Store, out: TextIO, fmt: Format, *, page: int = 500) -> int:
    """Stream every user (hashes, never plain passwords) in the import format. Returns the count."""
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    count, offset = 0, 0
    while True:
        users = store.list_users(limit=page, offset=offset)
        for user in users:
            doc = export_doc(user)
            if writer is not None:
                writer.writerow([_csv_cell(doc[c]) for c in CSV_COLUMNS])
            else:
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            count += 1
        if len(users) < page:
            return count
        offset += page


def _csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def export_doc(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "fullName": user.full_name,
        "passwordHash": user.password_hash,
        "roles": list(user.roles),
        "disabled": user.disabled,
        "_id": user.id,
    }


def count_rows(text: str | bytes, fmt: Format) -> int:
    """Rows in a file's content, for a progress bar's total."""
    data = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if fmt == "jsonl":
        return sum(1 for line in io.StringIO(data) if line.strip())
    return max(0, sum(1 for _ in csv.reader(io.StringIO(data))) - 1)
