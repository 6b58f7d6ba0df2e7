"""jwtctl config show"""

from __future__ import annotations

from typing import Annotated

import typer

from .options import JsonOpt
from .output import Output
from .state import get_state

app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Print secrets and URL passwords in full.")
    ] = False,
) -> None:
    """Show every setting, its value and where it came from.

    Sources are a flag, an environment variable, the config file or the default. Secrets and
    URL passwords are masked unless --reveal.

    \b
    Examples:
      jwtctl config show
      JWTCTL_ACCESS_TTL=5m jwtctl config show --json
    """
    state = get_state(ctx)
    settings = state.settings()
    rows = settings.describe(reveal=reveal)
    doc = {
        "configFile": str(settings.config_file) if settings.config_file else None,
        "settings": {
            name: {"value": value, "source": source, "variable": var}
            for name, var, value, source in rows
        },
    }

    def human(out: Output) -> None:
        out.line(f"config file: {settings.config_file or '(none)'}")
        out.table(["SETTING", "VARIABLE", "VALUE", "SOURCE"], [list(r) for r in rows])

    Output(json_mode=json_out, no_color=state.no_color).emit(doc, human)
