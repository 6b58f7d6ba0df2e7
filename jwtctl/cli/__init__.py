"""The `jwtctl` command: the root group, global options, and the one place where errors become
exit codes (``RootGroup.main``). Each noun lives in its own module; heavy libraries are imported
inside the commands that need them, so `jwtctl token decode` starts fast."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import ExitCode, JwtctlError
from .fast import install_plain_coercion
from .state import State


def _markup_mode() -> Any:
    """Rich help (panels, colour) on a terminal; Click's plain help when piped or NO_COLOR."""
    return "rich" if sys.stdout.isatty() and "NO_COLOR" not in os.environ else None


class RootGroup(TyperGroup):
    """Runs the command tree and turns every outcome into one exit code (SPEC §3)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        install_plain_coercion(self)
        code = run_guarded(
            lambda: super(RootGroup, self).main(
                args=argv,
                prog_name=prog_name or "jwtctl",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            ),
            debug="--debug" in argv,
        )
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(call: Any, *, debug: bool) -> int:
    try:
        rv = call()
    except JwtctlError as exc:
        if debug:
            traceback.print_exc()
        _error(exc.message)
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage errors keep Click's own format (exit 2)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _error(exc.format_message())
        return int(exc.exit_code)
    except typer.Abort:
        _error("aborted")
        return int(ExitCode.FAILURE)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`jwtctl user list | head`): not our failure, exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.FAILURE)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return int(ExitCode.FAILURE)
    return rv if isinstance(rv, int) else int(ExitCode.OK)


def _error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"jwtctl: error: {message}\n")
    sys.stderr.flush()


app = typer.Typer(
    cls=RootGroup,
    name="jwtctl",
    help=(
        "Admin and developer tool for dual-token JWT auth: users, signing keys, access and "
        "refresh tokens, sessions, and a dev server with the Express design's HTTP API.\n\n"
        "Runs on an embedded SQLite file by default; point --db (or JWTCTL_DB) at MongoDB "
        "for a real deployment."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=_markup_mode(),
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"jwtctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Store URL: sqlite:///ABS/PATH, sqlite:REL/PATH, mongodb://…, memory:. "
            "Env: JWTCTL_DB, MONGODB_URI.",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            metavar="DIR",
            help="Folder for the embedded store, keys and config. Env: JWTCTL_HOME.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", metavar="FILE", help="TOML config file. Env: JWTCTL_CONFIG."),
    ] = None,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour (also when NO_COLOR is set).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    flags: dict[str, object] = {
        "db": db,
        "home": str(home) if home else None,
        "config": str(config) if config else None,
    }
    state = State(flags=flags, debug=debug, no_color=no_color)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _register() -> None:
    from . import configcmd, db, keys, serve, sessions, token, user

    app.add_typer(user.app, name="user")
    app.add_typer(token.app, name="token")
    app.add_typer(sessions.app, name="sessions")
    app.add_typer(keys.app, name="keys")
    app.registered_commands += serve.app.registered_commands
    app.add_typer(db.app, name="db")
    app.add_typer(configcmd.app, name="config")


_register()


def main() -> None:
    """Console-script entry point."""
    app()
