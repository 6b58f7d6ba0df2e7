"""jwtctl db init | status"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..errors import ExitCode
from .options import JsonOpt
from .output import Output
from .state import get_state

if TYPE_CHECKING:
    from ..store import StoreStatus

app = typer.Typer(help="Prepare and inspect the store.", no_args_is_help=True)


def _show_status(out: Output, st: StoreStatus) -> None:
    pairs = [
        ("store", st.kind),
        ("location", st.location),
        ("reachable", "yes" if st.reachable else f"no: {st.problem}"),
    ]
    if st.version:
        pairs.append(("version", st.version))
    pairs += [(name, str(n)) for name, n in st.counts.items()]
    for ix in st.indexes:
        state = "present" if ix.present else "MISSING (run `jwtctl db init`)"
        pairs.append((f"index {ix.name}", state + (f" - {ix.detail}" if ix.detail else "")))
    out.fields(pairs)


@app.command("init")
def init(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Create the tables (SQLite) or indexes (MongoDB).

    Safe to run again; jwtctl also does this on first use.

    \b
    Examples:
      jwtctl db init
      jwtctl --db mongodb://localhost:27017/auth db init
    """
    state = get_state(ctx)
    store = state.store()
    store.init()
    st = store.status()

    def human(out: Output) -> None:
        out.line(f"Ready: {st.location}")
        _show_status(out, st)

    Output(json_mode=json_out, no_color=state.no_color).emit(st.as_dict(), human)


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show where the store is, whether it answers, and what it holds.

    Prints the version, counts and which indexes are present. Exits 6 when the store does not
    answer, so scripts can use it as a health check.

    \b
    Examples:
      jwtctl db status
      jwtctl db status --json
    """
    state = get_state(ctx)
    st = state.store().status()
    Output(json_mode=json_out, no_color=state.no_color).emit(
        st.as_dict(), lambda out: _show_status(out, st)
    )
    if not st.reachable:
        raise typer.Exit(int(ExitCode.STORE_UNAVAILABLE))
