"""jwtctl keys generate | list | rotate | retire | jwks"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import InvalidInput
from .options import JsonOpt
from .output import Output
from .state import get_state

app = typer.Typer(
    help="Manage signing keys: generate, rotate, retire, publish.", no_args_is_help=True
)

UseOpt = Annotated[
    str, typer.Option("--use", metavar="USE", help="access (default) or refresh tokens.")
]


def _use(value: str) -> str:
    if value not in ("access", "refresh"):
        raise InvalidInput("use", "must be access or refresh")
    return value


def _show_key(out: Output, verb: str, key: dict[str, object]) -> None:
    out.line(f"{verb} {key['alg']} {key['use']} key {key['kid']} (now the active {key['use']} key)")


@app.command("generate")
def generate(
    ctx: typer.Context,
    alg: Annotated[
        str | None,
        typer.Option(
            "--alg", metavar="ALG", help="HS256, EdDSA, ES256 or RS256 (default JWTCTL_ALG)."
        ),
    ] = None,
    use: UseOpt = "access",
    json_out: JsonOpt = False,
) -> None:
    """Add a new key and make it the active one; the previous key stays for verifying.

    Asymmetric keys get an RFC 7638 thumbprint as kid. Refresh keys are always HS256.

    \b
    Examples:
      jwtctl keys generate --alg EdDSA
      jwtctl keys generate --alg HS256 --use refresh
    """
    from ..config import ALGORITHMS
    from ..keys import generate as add_key

    state = get_state(ctx)
    settings = state.settings()
    chosen = alg or settings.alg
    match = next((a for a in ALGORITHMS if a.lower() == chosen.lower()), None)
    if match is None:
        raise InvalidInput("alg", f"{chosen!r} is not one of {', '.join(ALGORITHMS)}")
    state.keyring()  # the keyring exists (with its refresh key) before we add to it
    key = add_key(settings, match, _use(use), now=time.time()).describe()
    Output(json_mode=json_out, no_color=state.no_color).emit(
        key, lambda o: _show_key(o, "Generated", key)
    )


@app.command("rotate")
def rotate(ctx: typer.Context, use: UseOpt = "access", json_out: JsonOpt = False) -> None:
    """Make a new active key with the same algorithm; the old one stays for verifying.

    Tokens signed with the old key keep working until you retire it.

    \b
    Examples:
      jwtctl keys rotate
      jwtctl keys rotate --use refresh
    """
    from ..keys import generate as add_key

    state = get_state(ctx)
    current = state.keyring().active(_use(use))
    alg = current.alg if current.source == "keyring" else state.settings().alg
    key = add_key(state.settings(), alg, use, now=time.time()).describe()
    Output(json_mode=json_out, no_color=state.no_color).emit(
        key, lambda o: _show_key(o, "Rotated in", key)
    )


@app.command("retire")
def retire(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(metavar="KID", help="The kid of a verify-only key.")],
    json_out: JsonOpt = False,
) -> None:
    """Remove a verify-only key: tokens it signed stop verifying. Refuses the active key.

    \b
    Examples:
      jwtctl keys retire hs-3f2a9c1d0b7e
    """
    from ..keys import retire as drop

    state = get_state(ctx)
    state.keyring()
    key = drop(state.settings(), kid).describe()
    Output(json_mode=json_out, no_color=state.no_color).emit(
        key, lambda o: o.line(f"Retired {key['alg']} {key['use']} key {key['kid']}")
    )


@app.command("list")
def list_keys(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List keys: kid, algorithm, use, state (active or verify-only), created, source.

    Never prints key material.

    \b
    Examples:
      jwtctl keys list
      jwtctl keys list --json
    """
    state = get_state(ctx)
    rows = [k.describe() for k in state.keyring().keys]

    def human(out: Output) -> None:
        columns = ("kid", "alg", "use", "state", "created", "source")
        out.table(
            [c.upper() for c in columns],
            [[str(r[c] or "-") for c in columns] for r in rows],
            droppable=("SOURCE", "CREATED"),
        )

    Output(json_mode=json_out, no_color=state.no_color).emit(rows, human)


@app.command("jwks")
def jwks(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print the public access keys as an RFC 7517 JWK set (JSON).

    Only asymmetric public keys are published; secrets and private keys never are, so an
    HS256-only keyring gives an empty set. --json is accepted for uniformity (the output is
    always JSON).

    \b
    Examples:
      jwtctl keys jwks > public/.well-known/jwks.json
    """
    state = get_state(ctx)
    Output(json_mode=True, no_color=state.no_color).json(state.keyring().jwks())
    _ = json_out
