"""jwtctl user create | list | show | passwd | disable | enable | delete"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InvalidInput, JwtctlError
from ..timeutil import iso, relative
from . import complete
from .options import JsonOpt, PasswordStdinOpt, YesOpt, confirm, read_new_password
from .output import Output, note, progress, progress_enabled, status
from .state import get_state

if TYPE_CHECKING:
    from ..bulk import Format
    from ..models import User
    from ..users import Change

app = typer.Typer(help="Create, inspect and change users.", no_args_is_help=True)

UserArg = Annotated[
    str,
    typer.Argument(metavar="USER", help="Username, email or id.", autocompletion=complete.users),
]


def _when(ts: float | None, now: float) -> str:
    return "-" if ts is None else f"{iso(ts)} ({relative(ts, now)})"


def _show_user(out: Output, user: User) -> None:
    now = time.time()
    out.fields(
        [
            ("id", user.id),
            ("username", user.username),
            ("email", user.email),
            ("full name", user.full_name or "-"),
            ("roles", ", ".join(user.roles) or "-"),
            ("status", "disabled" if user.disabled else "enabled"),
            ("created", _when(user.created_at, now)),
            ("updated", _when(user.updated_at, now)),
            ("tokens valid after", _when(user.tokens_valid_after, now)),
        ]
    )


def _change_doc(change: Change) -> dict[str, Any]:
    return {**change.user.public(), "sessionsEnded": change.sessions_ended}


@app.command("create")
def create(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="USERNAME", help="3 to 32 of a-z 0-9 . _ -")],
    email: Annotated[str, typer.Option("--email", "-e", help="Email address (stored lower-case).")],
    full_name: Annotated[str, typer.Option("--full-name", "-n", help="Display name.")] = "",
    role: Annotated[
        list[str] | None, typer.Option("--role", "-r", help="A role; repeat for several.")
    ] = None,
    password_stdin: PasswordStdinOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a user.

    The password comes from a hidden prompt asked twice, or from the first line of standard
    input with --password-stdin; never from an argument. It must be 8 to 72 UTF-8 bytes.

    \b
    Examples:
      jwtctl user create alice --email alice@example.com --full-name "Alice Liddell"
      printf '%s\\n' "$PW" | jwtctl user create ci-bot --email ci@example.com --password-stdin
    """
    state = get_state(ctx)
    password = read_new_password(password_stdin)
    user = state.users().create(
        username=username, email=email, password=password, full_name=full_name, roles=role or ()
    )
    Output(json_mode=json_out, no_color=state.no_color).emit(
        user.public(),
        lambda out: out.line(f"Created user {user.username} ({user.email}), id {user.id}"),
    )


@app.command("list")
def list_users(
    ctx: typer.Context,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Text in username, email or full name.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most this many users; 0 for all.")
    ] = 100,
    json_out: JsonOpt = False,
) -> None:
    """List users, ordered by username.

    \b
    Examples:
      jwtctl user list
      jwtctl user list --search example.com --json
    """
    state = get_state(ctx)
    users = state.users()
    found = users.list(search=search, limit=limit or None)
    out = Output(json_mode=json_out, no_color=state.no_color)
    if limit and len(found) == limit:
        total = users.count(search=search)
        if total > limit:
            note(f"showing {limit} of {total} users; use --limit 0 for all")

    def human(o: Output) -> None:
        if not found:
            o.line("No users." if not search else f"No users match {search!r}.")
            return
        now = time.time()
        o.table(
            ["USERNAME", "EMAIL", "FULL NAME", "ROLES", "STATUS", "CREATED"],
            [
                [
                    u.username,
                    u.email,
                    u.full_name or "-",
                    ",".join(u.roles) or "-",
                    "disabled" if u.disabled else "enabled",
                    relative(u.created_at, now),
                ]
                for u in found
            ],
            droppable=("ROLES", "CREATED", "FULL NAME"),
        )

    out.emit([u.public() for u in found], human)


@app.command("show")
def show(ctx: typer.Context, user: UserArg, json_out: JsonOpt = False) -> None:
    """Show one user (never the password hash).

    \b
    Examples:
      jwtctl user show alice
      jwtctl user show alice@example.com --json
    """
    state = get_state(ctx)
    found = state.users().get(user)
    Output(json_mode=json_out, no_color=state.no_color).emit(
        found.public(), lambda out: _show_user(out, found)
    )


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    user: UserArg,
    password_stdin: PasswordStdinOpt = False,
    keep_sessions: Annotated[
        bool,
        typer.Option(
            "--keep-sessions",
            help="Keep the user's sessions and access tokens alive (default: end them all).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Set a user's password and end their sessions.

    Every session of the user ends and access tokens already issued stop working, unless
    --keep-sessions.

    \b
    Examples:
      jwtctl user passwd alice
      printf '%s\\n' "$NEW_PW" | jwtctl user passwd alice --password-stdin
    """
    state = get_state(ctx)
    users = state.users()
    users.get(user)  # an unknown user is reported before asking for a password
    password = read_new_password(password_stdin)
    change = users.set_password(user, password, keep_sessions=keep_sessions)
    ended = "" if keep_sessions else f"; ended {change.sessions_ended} session(s)"
    Output(json_mode=json_out, no_color=state.no_color).emit(
        _change_doc(change),
        lambda out: out.line(f"Password changed for {change.user.username}{ended}"),
    )


def _set_disabled(ctx: typer.Context, user: str, disabled: bool, json_out: bool) -> None:
    state = get_state(ctx)
    change = state.users().set_disabled(user, disabled)
    what = "Disabled" if disabled else "Enabled"
    ended = f"; ended {change.sessions_ended} session(s)" if disabled else ""
    Output(json_mode=json_out, no_color=state.no_color).emit(
        _change_doc(change), lambda out: out.line(f"{what} {change.user.username}{ended}")
    )


@app.command("disable")
def disable(ctx: typer.Context, user: UserArg, json_out: JsonOpt = False) -> None:
    """Disable a user and end their sessions.

    Logins are refused, every session ends and access tokens already issued stop working.

    \b
    Examples:
      jwtctl user disable mallory
    """
    _set_disabled(ctx, user, True, json_out)


@app.command("enable")
def enable(ctx: typer.Context, user: UserArg, json_out: JsonOpt = False) -> None:
    """Enable a disabled user again.

    They log in afresh; sessions ended by `disable` stay ended.

    \b
    Examples:
      jwtctl user enable mallory
    """
    _set_disabled(ctx, user, False, json_out)


@app.command("delete")
def delete(
    ctx: typer.Context, user: UserArg, yes: YesOpt = False, json_out: JsonOpt = False
) -> None:
    """Delete a user and all their sessions.

    Asks first unless --yes; the answer is read from standard input, and no answer means no.

    \b
    Examples:
      jwtctl user delete mallory
      jwtctl user delete mallory --yes --json
    """
    state = get_state(ctx)
    users = state.users()
    found = users.get(user)
    if not confirm(
        f"Delete user {found.username} ({found.email}) and all their sessions?", yes=yes
    ):
        raise JwtctlError("not confirmed; nothing was deleted (pass --yes to skip the question)")
    change = users.delete(found.id)
    Output(json_mode=json_out, no_color=state.no_color).emit(
        {**_change_doc(change), "deleted": True},
        lambda out: out.line(
            f"Deleted user {found.username} and {change.sessions_ended} session(s)"
        ),
    )


FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", metavar="FORMAT", help="jsonl or csv (default: from the file name, else jsonl)."
    ),
]


def _format(value: str | None, name: str | None, first_line: str = "") -> Format:
    from ..bulk import detect_format

    if value is None:
        return detect_format(name, first_line)
    if value not in ("jsonl", "csv"):
        raise typer.BadParameter("must be jsonl or csv", param_hint="'--format'")
    return "jsonl" if value == "jsonl" else "csv"


@app.command("import")
def import_users(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="JSON Lines or CSV file, or - for stdin.")
    ],
    fmt: FormatOpt = None,
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            metavar="MODE",
            help="When a user exists: skip (default), update, fail.",
        ),
    ] = "skip",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count only; write nothing.")
    ] = False,
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers", metavar="N", help="Threads hashing passwords (default: one per core)."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import users from JSON Lines or CSV, keeping existing bcrypt hashes.

    Columns: username, email, fullName, and password (hashed here, in parallel on all cores) or
    passwordHash ($2a$, $2b$, $2y$: kept, so users of another system keep their passwords);
    optional roles, disabled, _id. Bad rows are reported with their line number and skipped;
    the exit code is then 1. Each row is written whole or not at all, so running an interrupted
    import again finishes it.

    \b
    Examples:
      jwtctl user import users.csv
      mongoexport --db app --collection users | jwtctl user import - --dry-run
      jwtctl user import users.jsonl --on-conflict update --json
    """
    from ..bulk import ImportConflict, count_rows, read_rows
    from ..bulk import import_users as run_import

    if on_conflict not in ("skip", "update", "fail"):
        raise typer.BadParameter("must be skip, update or fail", param_hint="'--on-conflict'")
    threads = int(workers) if workers and workers.isdigit() and int(workers) > 0 else None
    if workers is not None and threads is None:
        raise typer.BadParameter("must be a whole number above 0", param_hint="'--workers'")
    state = get_state(ctx)
    text = _read_source(source)
    kind = _format(fmt, None if source == "-" else source, text[:200])
    total = count_rows(text, kind) if progress_enabled() else None  # only a progress bar needs it
    store = state.store()
    mode: Any = on_conflict
    label = "checking" if dry_run else "importing"
    rows = read_rows(io.StringIO(text, newline=""), kind)
    rounds = state.settings().bcrypt_rounds
    with progress(f"{label} {total or 0:,} users", total) as advance:
        try:
            summary = run_import(
                store,
                rows,
                rounds=rounds,
                on_conflict=mode,
                dry_run=dry_run,
                workers=threads,
                progress=advance,
            )
        except ImportConflict as exc:
            note(f"stopped at line {exc.line}; rows before it were written")
            raise
    _report_import(summary.as_dict(), json_out, state.no_color)
    if summary.failed:
        raise typer.Exit(1)


def _read_source(source: str) -> str:
    try:
        if source == "-":
            data = (
                sys.stdin.buffer.read()
                if hasattr(sys.stdin, "buffer")
                else sys.stdin.read().encode()
            )
        else:
            with open(source, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise InvalidInput("file", f"cannot read {source}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("file", f"{source} is not UTF-8 text (byte {exc.start})") from None


def _report_import(doc: dict[str, Any], json_out: bool, no_color: bool) -> None:
    errors = doc["errors"]
    if not json_out:
        for err in errors[:50]:
            note(f"line {err['line']}: {err['reason']}")
        if len(errors) > 50:
            note(f"… and {len(errors) - 50} more bad rows")
    verb = "would be" if doc["dryRun"] else "were"
    Output(json_mode=json_out, no_color=no_color).emit(
        doc,
        lambda out: out.line(
            f"{doc['created']} created, {doc['updated']} updated, {doc['skipped']} skipped, "
            f"{doc['failed']} failed ({verb} written: {doc['created'] + doc['updated']})"
        ),
    )


@app.command("export")
def export_users(
    ctx: typer.Context,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write here (mode 0600) instead of stdout."
        ),
    ] = None,
    fmt: FormatOpt = None,
) -> None:
    """Export every user in the import format: password hashes, never passwords.

    Streams users page by page. With --output the file is written under a temporary name
    with mode 0600 and renamed into place when complete.

    \b
    Examples:
      jwtctl user export > users.jsonl
      jwtctl user export --output users.csv
    """
    from ..bulk import export_users as run_export

    state = get_state(ctx)
    kind = _format(fmt, output)
    store = state.store()
    if output is None:
        run_export(store, sys.stdout, kind)
        return
    target = os.path.abspath(output)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise InvalidInput("output", f"cannot write {output}: {exc.strerror}") from None
    try:
        with (
            os.fdopen(fd, "w", encoding="utf-8", newline="") as fh,
            status(f"exporting to {output}"),
        ):
            count = run_export(store, fh, kind)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    note(f"exported {count} users to {output}")
