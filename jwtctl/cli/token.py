"""jwtctl token issue | decode | verify

`token decode` is run in loops by scripts: this module imports nothing heavy at the top, and
decode itself needs only the standard library.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InvalidInput, TokenError
from ..timeutil import iso, relative
from . import complete
from .options import JsonOpt, duration_flag
from .output import Output
from .state import get_state

if TYPE_CHECKING:
    from ..keys import Key
    from ..sessions import Issued
    from ..tokens import Policy
    from .state import State

app = typer.Typer(help="Issue, decode and verify JWTs.", no_args_is_help=True)

TokenArg = Annotated[
    str | None,
    typer.Argument(
        metavar="TOKEN",
        help="The JWT, or - (or nothing) to read it from standard input. "
        "A leading 'Bearer ' is ignored.",
    ),
]


def read_token(arg: str | None) -> str:
    from ..tokens import MAX_TOKEN_BYTES, clean

    if arg is None or arg == "-":
        if arg is None and sys.stdin.isatty():
            raise typer.BadParameter("give a token, or pipe one in", param_hint="'TOKEN'")
        stream = getattr(sys.stdin, "buffer", None)
        data = (
            stream.read(MAX_TOKEN_BYTES + 1024) if stream is not None else sys.stdin.read().encode()
        )
        # Tokens are ASCII; anything else is reported by the parser, never a decoding crash.
        return clean(data.decode("utf-8", "replace"))
    return clean(arg)


def _claims(pairs: list[str] | None) -> dict[str, Any]:
    from ..tokens import RESERVED_CLAIMS

    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="'--claim'")
        if name.strip() in RESERVED_CLAIMS:
            raise InvalidInput("claim", f"{name.strip()} cannot be set: jwtctl sets it")
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw
    return out


def _show_json_block(out: Output, title: str, value: Any) -> None:
    out.line(title, style="bold")
    out.line(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def _show_times(out: Output, times: dict[str, dict[str, Any]]) -> None:
    if times:
        out.line("Times", style="bold")
        for claim, t in times.items():
            out.line(f"  {claim:<9} {t['iso'] or '?'}  ({t['relative']})")


# --- issue -----------------------------------------------------------------------------------


@app.command("issue")
def issue(
    ctx: typer.Context,
    user: Annotated[
        str,
        typer.Argument(
            metavar="USER", help="Username, email or id.", autocompletion=complete.users
        ),
    ],
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl", metavar="DURATION", help="Access-token lifetime (default JWTCTL_ACCESS_TTL)."
        ),
    ] = None,
    claim: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            "-c",
            metavar="NAME=VALUE",
            help="Extra claim; VALUE is parsed as JSON when it is JSON, else a string. Repeatable. "
            "Registered and identity claims (exp, sub, iss, sid…) cannot be set.",
        ),
    ] = None,
    with_refresh: Annotated[
        bool, typer.Option("--with-refresh", help="Also print the session's refresh token.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Issue an access token for an enabled user, in a new revocable session.

    When stdout is not a terminal only the token is printed (then the refresh token on a second
    line with --with-refresh), so TOKEN=$(jwtctl token issue alice) just works.

    \b
    Examples:
      jwtctl token issue alice
      TOKEN=$(jwtctl token issue alice --ttl 5m --claim 'roles=["admin"]')
      jwtctl token issue alice --with-refresh --json
    """
    state = get_state(ctx)
    seconds = duration_flag(ttl, "--ttl")
    if seconds is not None and seconds <= 0:
        raise typer.BadParameter("must be longer than 0s", param_hint="'--ttl'")
    issued = state.auth().issue(user, ttl=seconds, claims=_claims(claim))
    doc: dict[str, Any] = {"accessToken": issued.access_token}
    if with_refresh:
        doc["refreshToken"] = issued.refresh_token
    doc.update(
        sessionId=issued.session.id,
        expiresAt=iso(issued.access_claims["exp"]),
        claims=issued.access_claims,
    )
    out = Output(json_mode=json_out, no_color=state.no_color)
    if json_out:
        out.json(doc)
    elif not out.tty:
        sys.stdout.write(issued.access_token + "\n")
        if with_refresh:
            sys.stdout.write(issued.refresh_token + "\n")
    else:
        _show_issued(out, issued, with_refresh)


def _show_issued(out: Output, issued: Issued, with_refresh: bool) -> None:
    now = time.time()
    exp = float(issued.access_claims["exp"])
    out.line(issued.access_token)
    pairs = [
        ("user", f"{issued.user.username} ({issued.user.id})"),
        ("session", issued.session.id),
        ("expires", f"{iso(exp)} ({relative(exp, now)})"),
    ]
    if with_refresh:
        pairs.append(("refresh token", issued.refresh_token))
        refresh_exp = float(issued.refresh_claims["exp"])
        pairs.append(("refresh expires", f"{iso(refresh_exp)} ({relative(refresh_exp, now)})"))
    out.fields(pairs)


# --- decode ----------------------------------------------------------------------------------


@app.command("decode")
def decode(ctx: typer.Context, token: TokenArg = None, json_out: JsonOpt = False) -> None:
    """Show any JWT's header and claims, with readable times. Does NOT verify the signature.

    Exits 0 for any well-formed token (expired ones too) and 3 with the reason for anything that
    is not a JWT: wrong number of segments, not base64url, not JSON.

    \b
    Examples:
      jwtctl token decode eyJhbGciOi...
      pbpaste | jwtctl token decode
      jwtctl token decode "$TOKEN" --json | jq .payload.sub
    """
    from ..tokens import parse, time_claims, time_status

    state = get_state(ctx)
    parsed = parse(read_token(token))
    now = time.time()
    times = time_claims(parsed.payload, now)
    status = time_status(parsed.payload, now)
    out = Output(json_mode=json_out, no_color=state.no_color)
    if json_out:
        out.json(
            {
                "header": parsed.header,
                "payload": parsed.payload,
                "times": times,
                "status": status,
                "verified": False,
            }
        )
        return
    out.line("UNVERIFIED: decoded only; the signature has not been checked.", style="bold yellow")
    _show_json_block(out, "Header", parsed.header)
    _show_json_block(out, "Payload", parsed.payload)
    _show_times(out, times)
    if "exp" not in parsed.payload:
        status += " (no exp: never expires)"
    out.line(f"Status: {status} (unverified)", style="red" if status == "expired" else None)


# --- verify ----------------------------------------------------------------------------------


def _external_keys(
    key: Path | None,
    jwks: Path | None,
    secret_file: Path | None,
    secret_env: str | None,
    alg: str | None,
) -> list[Key] | None:
    from .. import keys as k

    given = [x for x in (key, jwks, secret_file, secret_env) if x is not None]
    if not given:
        return None
    if len(given) > 1:
        raise typer.BadParameter(
            "give only one of --key, --jwks, --secret-file, --secret-env", param_hint="'--key'"
        )
    if key is not None:
        return [k.load_key_file(key, alg)]
    if jwks is not None:
        return k.load_jwks_file(jwks, alg)
    if secret_file is not None:
        try:
            data = secret_file.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                "secret-file", f"cannot read {secret_file}: {exc.strerror}"
            ) from None
        secret = data.removesuffix(b"\n").removesuffix(b"\r")
        return [k.external_secret(secret, alg, f"--secret-file {secret_file}")]
    import os

    assert secret_env is not None
    value = os.environ.get(secret_env)
    if not value:
        raise InvalidInput("secret-env", f"environment variable {secret_env} is not set")
    return [k.external_secret(value.encode(), alg, f"--secret-env {secret_env}")]


@app.command("verify")
def verify(
    ctx: typer.Context,
    token: TokenArg = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Verify with this PEM or JWK key.")
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks", metavar="FILE", help="Verify with the key of this JWK set that the kid names."
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", metavar="FILE", help="Verify with the HMAC secret in FILE."),
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            "--secret-env",
            metavar="VAR",
            help="Verify with the HMAC secret in environment variable VAR.",
        ),
    ] = None,
    alg: Annotated[
        str | None,
        typer.Option(
            "--alg",
            metavar="ALG",
            help="Algorithm the given key must be used with (default: from the key).",
        ),
    ] = None,
    iss: Annotated[
        str | None, typer.Option("--iss", help="Required issuer (default JWTCTL_ISSUER).")
    ] = None,
    aud: Annotated[
        str | None, typer.Option("--aud", help="Required audience (default JWTCTL_AUDIENCE).")
    ] = None,
    no_iss: Annotated[bool, typer.Option("--no-iss", help="Do not require or check iss.")] = False,
    no_aud: Annotated[bool, typer.Option("--no-aud", help="Do not require or check aud.")] = False,
    leeway: Annotated[
        str | None,
        typer.Option(
            "--leeway", metavar="DURATION", help="Clock skew allowed (default JWTCTL_LEEWAY)."
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option("--require", metavar="CLAIM", help="Also require this claim. Repeatable."),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--type", metavar="TYPE", help="access (default) or refresh (checked, never rotated)."
        ),
    ] = "access",
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Check signature and claims only; do not consult the store."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Verify a JWT: exit 0 with its claims, or exit 3 with one line saying exactly why not.

    By default the token is checked against the keyring and the store: the user must exist and
    be enabled, the token must postdate a password change, and its session must be active.
    --offline skips the store. --key, --jwks, --secret-file or --secret-env verify any JWT,
    from anyone, against that key instead (then only exp, iss and aud are required).

    \b
    Examples:
      jwtctl token verify "$TOKEN"
      jwtctl token verify "$TOKEN" --offline --leeway 30s --json
      jwtctl token verify "$TOKEN" --secret-env ACCESS_TOKEN_SECRET --no-iss --no-aud
      jwtctl token verify "$TOKEN" --jwks jwks.json --iss https://issuer.example --aud api
    """
    from ..tokens import time_claims

    if kind not in ("access", "refresh"):
        raise typer.BadParameter("must be access or refresh", param_hint="'--type'")
    state = get_state(ctx)
    out = Output(json_mode=json_out, no_color=state.no_color)
    raw = read_token(token)
    settings = state.settings()
    skew = duration_flag(leeway, "--leeway")
    external = _external_keys(key, jwks, secret_file, secret_env, alg)
    issuer = None if no_iss else (iss or settings.issuer)
    audience = None if no_aud else (aud or settings.audience)
    want = _Wanted(
        issuer, audience, settings.leeway if skew is None else skew, frozenset(require or ())
    )
    try:
        if external is not None:
            result = _check_external(raw, external, want)
        else:
            result = _check_own(state, raw, kind, want, offline=offline)
    except TokenError as exc:
        if json_out:
            out.json({"valid": False, "error": exc.message})
        raise TokenError(f"token rejected: {exc.message}") from exc
    header, payload, checks = result
    if json_out:
        out.json({"valid": True, "header": header, "payload": payload})
        return
    what = f"{kind} token" if external is None else "token"
    detail = ", ".join(f"{k} {v}" for k, v in checks.items())
    out.line(f"VALID {what}" + (f" ({detail})" if detail else ""), style="bold green")
    _show_json_block(out, "Header", header)
    _show_json_block(out, "Payload", payload)
    _show_times(out, time_claims(payload, time.time()))


@dataclass(frozen=True)
class _Wanted:
    """What the verify flags ask for, on top of a good signature."""

    issuer: str | None
    audience: str | None
    leeway: int
    required: frozenset[str]

    def policy(self, base: frozenset[str], typ: str | None) -> Policy:
        from ..tokens import Policy

        drop = {c for c, v in (("iss", self.issuer), ("aud", self.audience)) if v is None}
        needed = (base - drop) | self.required
        return Policy(frozenset(needed), self.issuer, self.audience, self.leeway, typ)


Checked = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def _check_external(raw: str, keys: list[Key], want: _Wanted) -> Checked:
    """Any JWT against a given key: exp (and iss/aud unless relaxed) required, typ free."""
    from ..tokens import verify as verify_token

    policy = want.policy(frozenset({"exp", "iss", "aud"}), None)
    verified = verify_token(raw, keys, policy, now=time.time(), by_kid_only=False)
    return verified.header, verified.payload, {}


def _check_own(state: State, raw: str, kind: str, want: _Wanted, *, offline: bool) -> Checked:
    """jwtctl's own token against the keyring, and the store unless offline."""
    from ..sessions import own_policy
    from ..tokens import ACCESS_TYP, REFRESH_TYP
    from ..tokens import verify as verify_token

    typ = ACCESS_TYP if kind == "access" else REFRESH_TYP
    policy = want.policy(own_policy(state.settings(), typ).required, typ)
    if offline:
        keys = state.keyring().for_verification(kind)
        verified = verify_token(raw, keys, policy, now=time.time())
        return verified.header, verified.payload, {}
    sessions = state.auth().sessions
    if kind == "access":
        access = sessions.check_access(raw, policy)
        checks: dict[str, Any] = {
            "user": access.user.username,
            "session": access.session.id,
            "sessionState": "active",
        }
        return access.header, access.claims, checks
    verified, session = sessions.check_refresh(raw, policy)
    checks = {
        "session": session.id,
        "sessionState": "active",
        "generation": session.generation,
    }
    return verified.header, verified.payload, checks
