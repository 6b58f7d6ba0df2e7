"""jwtctl sessions list | show | revoke | prune"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import JwtctlError
from ..timeutil import format_duration, relative
from . import complete
from .options import JsonOpt, YesOpt, confirm, duration_flag
from .output import Output, note, status
from .state import State, get_state

if TYPE_CHECKING:
    from ..models import Session

app = typer.Typer(help="Inspect and end login sessions.", no_args_is_help=True)


def _names(state: State, sessions: list[Session]) -> dict[str, str | None]:
    """user id -> username, one lookup per user."""
    store = state.store()
    names: dict[str, str | None] = {}
    for s in sessions:
        if s.user_id not in names:
            user = store.get_user(s.user_id)
            names[s.user_id] = user.username if user else None
    return names


def _docs(state: State, sessions: list[Session]) -> list[dict[str, Any]]:
    names = _names(state, sessions)
    now = time.time()
    return [s.public(now, names[s.user_id]) for s in sessions]


def _rel(ts: str | None, now: float) -> str:
    from ..timeutil import parse_iso

    return "-" if ts is None else relative(parse_iso(ts), now)


def _table(out: Output, docs: list[dict[str, Any]]) -> None:
    now = time.time()
    out.table(
        ["ID", "USER", "CREATED", "LAST USED", "EXPIRES", "IP", "USER AGENT", "GEN", "STATE"],
        [
            [
                d["id"],
                d["username"] or d["userId"],
                _rel(d["createdAt"], now),
                _rel(d["lastUsedAt"], now),
                _rel(d["expiresAt"], now),
                d["ip"] or "-",
                (d["userAgent"] or "-")[:40],
                str(d["generation"]),
                d["state"] + (f" ({d['revokeReason']})" if d["revokeReason"] else ""),
            ]
            for d in docs
        ],
        droppable=("USER AGENT", "IP", "LAST USED", "GEN", "CREATED"),
    )


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            metavar="USER",
            help="Only this user's sessions.",
            autocompletion=complete.users,
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Include ended sessions (revoked or expired).")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most this many sessions; 0 for all.")
    ] = 100,
    json_out: JsonOpt = False,
) -> None:
    """List sessions, newest first: active ones, or all with --all.

    Expiry is checked when listing, so an idle or absolute timeout shows at once.

    \b
    Examples:
      jwtctl sessions list
      jwtctl sessions list --user alice --all --json
    """
    state = get_state(ctx)
    user_id = state.users().get(user).id if user else None
    found = state.auth().sessions.list(user_id=user_id, include_ended=all_, limit=limit or None)
    if limit and len(found) == limit:
        note(f"showing the newest {limit} sessions; use --limit 0 for all")
    docs = _docs(state, found)

    def human(out: Output) -> None:
        if not docs:
            out.line("No sessions." if all_ else "No active sessions (--all shows ended ones).")
        else:
            _table(out, docs)

    Output(json_mode=json_out, no_color=state.no_color).emit(docs, human)


@app.command("show")
def show(
    ctx: typer.Context,
    session_id: Annotated[
        str,
        typer.Argument(
            metavar="SESSION_ID", help="The session's id.", autocompletion=complete.sessions
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show one session, including how and from where it ended.

    \b
    Examples:
      jwtctl sessions show 6650f0c2a1b2c3d4e5f60718
    """
    state = get_state(ctx)
    session = state.auth().sessions.get(session_id.strip())
    doc = _docs(state, [session])[0]

    def human(out: Output) -> None:
        now = time.time()
        pairs = [(k, "-" if v is None else str(v)) for k, v in doc.items() if not k.endswith("At")]
        for key in ("createdAt", "lastUsedAt", "expiresAt", "absoluteExpiresAt", "revokedAt"):
            value = doc[key]
            pairs.append((key, "-" if value is None else f"{value} ({_rel(value, now)})"))
        if session.revoked_ip or session.revoked_user_agent:
            pairs.append(
                ("revoked from", f"{session.revoked_ip or '-'} {session.revoked_user_agent or ''}")
            )
        out.fields(pairs)

    Output(json_mode=json_out, no_color=state.no_color).emit(doc, human)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    session_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SESSION_ID]...", help="Sessions to end.", autocompletion=complete.sessions
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            metavar="USER",
            help="End this user's sessions.",
            autocompletion=complete.users,
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="With --user: only sessions created longer ago.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """End sessions at once: by id, or every active session of a user.

    Their refresh tokens stop working and so do access tokens already issued in them. Asks
    first unless --yes (the answer is read from standard input; no answer means no).

    \b
    Examples:
      jwtctl sessions revoke 6650f0c2a1b2c3d4e5f60718
      jwtctl sessions revoke --user alice --older-than 30d --dry-run
      jwtctl sessions revoke --user mallory --yes --json
    """
    ids = [i.strip() for i in session_ids or []]
    if bool(ids) == bool(user):
        raise typer.BadParameter(
            "give session ids or --user USER (not both)", param_hint="'SESSION_ID'"
        )
    if older_than is not None and not user:
        raise typer.BadParameter("only with --user", param_hint="'--older-than'")
    age = duration_flag(older_than, "--older-than")
    state = get_state(ctx)
    sessions = state.auth().sessions
    now = time.time()
    if user:
        owner = state.users().get(user)
        plan = [
            s for s in sessions.list(user_id=owner.id) if age is None or s.created_at < now - age
        ]
    else:
        plan = [sessions.get(i) for i in ids]  # an unknown id stops here, before any change
    active = [s for s in plan if s.state(now) == "active"]
    out = Output(json_mode=json_out, no_color=state.no_color)
    if dry_run:
        out.emit(
            {"dryRun": True, "revoked": 0, "sessions": _docs(state, active)},
            lambda o: _plan(o, state, active, "would be revoked"),
        )
        return
    if active and not confirm(f"Revoke {len(active)} session(s)?", yes=yes):
        raise JwtctlError("not confirmed; nothing was revoked (pass --yes to skip the question)")
    if user:  # one store operation; it also ends sessions begun since the plan was made
        with status(f"revoking {len(active)} session(s) of {owner.username}"):
            ended = sessions.revoke_user(owner.id, older_than=age, reason="admin")
    else:
        ended = [s.id for s in active if sessions.logout(s.id, reason="admin")]
    after = sorted((sessions.get(sid) for sid in ended), key=lambda s: s.created_at, reverse=True)
    out.emit(
        {"dryRun": False, "revoked": len(after), "sessions": _docs(state, after)},
        lambda o: _plan(o, state, after, "revoked"),
    )


def _plan(out: Output, state: State, sessions: list[Session], verb: str) -> None:
    if not sessions:
        out.line("No active sessions matched; nothing to revoke.")
        return
    out.line(f"{len(sessions)} session(s) {verb}:")
    _table(out, _docs(state, sessions))


@app.command("prune")
def prune(
    ctx: typer.Context,
    keep_revoked: Annotated[
        str,
        typer.Option(
            "--keep-revoked",
            metavar="DURATION",
            help="Keep revoked sessions this long (default 7d).",
        ),
    ] = "7d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; remove nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove expired sessions, and revoked ones older than --keep-revoked.

    MongoDB also does this by itself (a TTL index removes sessions 7 days after they end);
    run this for SQLite, or on demand.

    \b
    Examples:
      jwtctl sessions prune --dry-run
      jwtctl sessions prune --keep-revoked 30d --json
    """
    keep = duration_flag(keep_revoked, "--keep-revoked")
    assert keep is not None
    state = get_state(ctx)
    with status("counting sessions to prune" if dry_run else "pruning sessions"):
        expired, revoked = state.auth().sessions.prune(keep_revoked=keep, dry_run=dry_run)
    doc = {"dryRun": dry_run, "expired": expired, "revoked": revoked, "removed": expired + revoked}
    verb = "would remove" if dry_run else "removed"
    Output(json_mode=json_out, no_color=state.no_color).emit(
        doc,
        lambda o: o.line(
            f"{verb} {expired + revoked} session(s): {expired} expired, "
            f"{revoked} revoked more than {format_duration(keep)} ago"
        ),
    )
