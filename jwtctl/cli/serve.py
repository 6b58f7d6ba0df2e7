"""jwtctl serve"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ..errors import StoreUnavailable
from .options import duration_flag
from .output import warn
from .state import get_state

app = typer.Typer(help="Run the dev server.")

DEMO_PASSWORD = "correct horse battery"  # noqa: S105 - the sample in the printed curl line


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        str, typer.Option("--port", "-p", help="Port to listen on; 0 picks a free one.")
    ] = "8000",
    insecure_cookies: Annotated[
        bool,
        typer.Option(
            "--insecure-cookies", help="Leave Secure off the cookies (plain-HTTP clients)."
        ),
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", metavar="STORE", help="memory for a throwaway store, or any store URL."
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            metavar="ORIGIN",
            help="Another origin (a front end, e.g. http://localhost:5173) allowed to make "
            "cookie-authenticated changes and CORS requests. Repeatable.",
        ),
    ] = None,
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads", help="Event-loop threads serving connections (default: 2 per CPU core)."
        ),
    ] = None,
    timeout: Annotated[
        str,
        typer.Option("--timeout", metavar="DURATION", help="Idle and read timeout per connection."),
    ] = "15s",
) -> None:
    """Serve the Express design's auth API on this machine, for front ends and API clients.

    Routes under /api/v1/users: register, login, refresh-token, logout, logout-all,
    current-user, sessions; plus /.well-known/jwks.json and /healthz. Stop with Ctrl-C or
    SIGTERM: in-flight requests finish, the exit code is 0.

    \b
    Examples:
      jwtctl serve
      jwtctl serve --store memory --insecure-cookies --port 0
      jwtctl serve --allow-origin http://localhost:5173
    """
    from ..server.app import App
    from ..server.serve import bind, run

    state = get_state(ctx)
    if store is not None:
        state.settings(db="memory:" if store == "memory" else store)
    idle = duration_flag(timeout, "--timeout") or 0
    try:
        port_number = int(port)
        thread_count = int(threads) if threads is not None else 2 * (os.cpu_count() or 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not 0 <= port_number <= 65535 or thread_count < 1 or idle < 1:
        raise typer.BadParameter("--port must be 0-65535, --threads and --timeout at least 1")
    settings = state.settings()
    auth = state.auth()
    keyring = auth.keyring  # created (and announced) now rather than on the first request
    wsgi = App(
        auth, secure_cookies=not insecure_cookies, allowed_origins=allow_origin or (), log=_err
    )
    server = bind(
        host, port_number, wsgi, log=_err, threads=thread_count,
        connection_timeout=float(idle), max_body=settings.max_body,
    )  # fmt: skip
    url = f"http://{server.server_address[0]!s}:{server.server_address[1]}"
    try:
        auth.store.ping()
        store_note = ""
    except StoreUnavailable as exc:
        store_note = "  (NOT ANSWERING: requests get 503 until it does)"
        warn(f"the store does not answer yet: {exc.problem}")
    if settings.bcrypt_rounds < 10:
        warn(f"JWTCTL_BCRYPT_ROUNDS is {settings.bcrypt_rounds}; use at least 10 outside tests")
    if insecure_cookies:
        warn("--insecure-cookies: cookies go without the Secure flag; never expose this server")
    access_key = keyring.active("access")
    cookies = "HttpOnly, SameSite=Strict" + ("" if insecure_cookies else ", Secure")
    body = (
        '{"username":"alice","email":"alice@example.com","fullName":"Alice",'
        f'"password":"{DEMO_PASSWORD}"}}'
    )
    login = f'{{"username":"alice","password":"{DEMO_PASSWORD}"}}'
    json_header = "-H 'Content-Type: application/json'"
    _err(f"jwtctl serve: listening on {url}")
    _err(f"  store    {auth.store.location}{store_note}")
    _err(f"  keys     access {access_key.alg} (kid {access_key.kid}), refresh HS256")
    _err(f"  cookies  {cookies}{' (insecure)' if insecure_cookies else ''}")
    _err(f"  origins  {url}" + "".join(f", {o}" for o in allow_origin or ()))
    _err(f"  try      curl -s {url}/api/v1/users/register {json_header} -d '{body}'")
    _err(f"           curl -s {url}/api/v1/users/login {json_header} -d '{login}'")
    _err("  stop     Ctrl-C")
    run(server, on_stop=lambda: _err("jwtctl serve: shutting down; finishing requests in flight"))
