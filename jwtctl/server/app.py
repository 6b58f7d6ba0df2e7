"""The Express design's auth API as a PEP 3333 WSGI application (standard library only).

The application keeps no state of its own: users, sessions and login-failure counters live in the
store, keys in the keyring file, so several processes on one store behave as one. Every answer
uses the design's envelopes; client input never causes a 5xx (only an unreachable store: 503).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..auth import Auth
from ..errors import (
    AuthenticationFailed,
    InvalidInput,
    JwtctlError,
    NotFound,
    StoreUnavailable,
    TokenError,
    TooManyAttempts,
    UserExists,
)
from ..sessions import Access, Issued

API = "/api/v1/users"
REFRESH_COOKIE_PATH = API
_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, errors: list[dict[str, str]] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message = status, message
        self.errors = errors or []
        self.headers = headers or []


@dataclass
class Response:
    status: int
    body: Any = None  # a dict for JSON, bytes for raw, None for empty
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Request:
    environ: Mapping[str, Any]
    method: str
    path: str
    _body: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        key = (
            "CONTENT_TYPE"
            if name.lower() == "content-type"
            else "HTTP_" + name.upper().replace("-", "_")
        )
        value = self.environ.get(key)
        return value if isinstance(value, str) else None

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for part in (self.header("cookie") or "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name and name not in jar:
                jar[name] = value.strip().strip('"')
        return jar

    @property
    def remote_addr(self) -> str | None:
        value = self.environ.get("REMOTE_ADDR")
        return value if isinstance(value, str) else None


def envelope(status: int, data: Any, message: str) -> dict[str, Any]:
    return {"statusCode": status, "data": data, "message": message, "success": status < 400}


def error_envelope(status: int, message: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "data": None,
        "message": message,
        "success": False,
        "errors": errors,
    }


class App:
    """``App(auth)`` is a WSGI callable. ``allowed_origins`` are the other origins (a front end
    on another port) trusted for cookie-authenticated state changes and CORS."""

    def __init__(
        self,
        auth: Auth,
        *,
        secure_cookies: bool = True,
        allowed_origins: Iterable[str] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.auth = auth
        self.secure = secure_cookies
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.max_body = auth.settings.max_body
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.routes: dict[str, dict[str, Callable[[Request], Response]]] = {
            f"{API}/register": {"POST": self.register},
            f"{API}/login": {"POST": self.login},
            f"{API}/refresh-token": {"POST": self.refresh},
            f"{API}/logout": {"POST": self.logout},
            f"{API}/logout-all": {"POST": self.logout_all},
            f"{API}/current-user": {"GET": self.current_user},
            f"{API}/sessions": {"GET": self.list_sessions},
            "/.well-known/jwks.json": {"GET": self.jwks},
            "/healthz": {"GET": self.healthz},
        }

    # --- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        request = Request(environ, method, path)
        try:
            response = self.dispatch(request)
        except HttpError as exc:
            response = Response(
                exc.status, error_envelope(exc.status, exc.message, exc.errors), exc.headers
            )
        except Exception:  # a bug: answer 500, log it, never show it to the client
            self.log("jwtctl serve: internal error\n" + traceback.format_exc())
            response = Response(500, error_envelope(500, "internal server error", []))
        self._cors(request, response)
        body = b""
        if isinstance(response.body, bytes):
            body = response.body
        elif response.body is not None:
            body = json.dumps(response.body, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8"
            )
            response.headers.append(("Content-Type", "application/json; charset=utf-8"))
        if path.startswith(API) or path == "/healthz":
            response.headers.append(("Cache-Control", "no-store"))
        response.headers.append(("Content-Length", str(len(body))))
        status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
        start_response(status, response.headers)
        return [] if method == "HEAD" else [body]

    def dispatch(self, request: Request) -> Response:
        handlers = self.routes.get(request.path)
        session_id = request.path.removeprefix(f"{API}/sessions/")
        if handlers is None and session_id != request.path and session_id and "/" not in session_id:
            handlers = {"DELETE": self.delete_session}
        if handlers is None:
            raise HttpError(404, f"no route for {request.path[:200]}")
        if request.method == "OPTIONS":
            allow = ", ".join([*handlers, "OPTIONS"])
            return Response(204, None, [("Allow", allow)])
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            allow = ", ".join([*handlers, "OPTIONS"])
            raise HttpError(
                405, f"method {request.method[:20]} not allowed here", headers=[("Allow", allow)]
            )
        try:
            return handler(request)
        except JwtctlError as exc:
            raise self._http_error(exc) from exc

    @staticmethod
    def _http_error(exc: JwtctlError) -> HttpError:  # noqa: PLR0911 - one branch per family
        if isinstance(exc, InvalidInput):
            return HttpError(400, exc.message, [{"field": exc.field, "message": exc.problem}])
        if isinstance(exc, AuthenticationFailed):
            return HttpError(401, "invalid user credentials")
        if isinstance(exc, TokenError):
            return HttpError(401, f"unauthorized: {exc.message}")
        if isinstance(exc, TooManyAttempts):
            return HttpError(429, exc.message, headers=[("Retry-After", str(exc.retry_after))])
        if isinstance(exc, UserExists):
            return HttpError(409, exc.message, [{"field": exc.field, "message": "already taken"}])
        if isinstance(exc, NotFound):
            return HttpError(404, exc.message)
        if isinstance(exc, StoreUnavailable):
            return HttpError(
                503, "service unavailable: the store does not answer; try again shortly"
            )
        return HttpError(400, exc.message)

    # --- input ---------------------------------------------------------------------------------
    def body(self, request: Request) -> dict[str, Any]:
        """The JSON object of the body (an empty body is {}). 413 over the size cap, 415 when not
        JSON, 400 when not a JSON object."""
        if request._body is not None:
            return request._body
        raw_length = str(request.environ.get("CONTENT_LENGTH") or "0").strip() or "0"
        if not raw_length.isdigit():
            raise HttpError(400, "Content-Length is not a number")
        length = int(raw_length)
        if length > self.max_body:
            raise HttpError(413, f"request body is {length} bytes; the limit is {self.max_body}")
        data = request.environ["wsgi.input"].read(length) if length else b""
        if not data.strip():
            request._body = {}
            return request._body
        ctype = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json" and not (
            ctype.startswith("application/") and ctype.endswith("+json")
        ):
            raise HttpError(415, "request body must be JSON (Content-Type: application/json)")
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise HttpError(400, "request body is not valid JSON") from None
        if not isinstance(value, dict):
            raise HttpError(400, "request body must be a JSON object")
        request._body = value
        return value

    @staticmethod
    def text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
        """A string field. Anything else (a number, null, an operator object such as
        {"$ne": null}) is a 400 naming the field; it never reaches a query."""
        value = body.get(name)
        if value is None:
            if required:
                raise HttpError(
                    400, f"{name} is required", [{"field": name, "message": "is required"}]
                )
            return None
        if not isinstance(value, str):
            raise HttpError(
                400, f"{name} must be a string", [{"field": name, "message": "must be a string"}]
            )
        return value

    def _origin_ok(self, request: Request) -> bool:
        origin = request.header("origin")
        if origin is None:
            referer = request.header("referer")
            if referer is None:
                return True  # not a browser's cross-site request (curl, servers)
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
        origin = origin.rstrip("/")
        scheme = str(request.environ.get("wsgi.url_scheme", "http"))
        host = (
            request.header("host")
            or f"{request.environ.get('SERVER_NAME')}:{request.environ.get('SERVER_PORT')}"
        )
        return origin == f"{scheme}://{host}" or origin in self.allowed_origins

    def _csrf(self, request: Request) -> None:
        if not self._origin_ok(request):
            raise HttpError(
                403, "cross-site request refused: Origin is not this server or an allowed origin"
            )

    def access(self, request: Request, *, state_changing: bool = False) -> Access:
        """The caller's access: cookie `accessToken`, else `Authorization: Bearer`. A cookie on a
        state-changing request must come from this origin or an allowed one (else 403)."""
        token = request.cookies.get("accessToken")
        if token:
            if state_changing:
                self._csrf(request)
        else:
            header = request.header("authorization") or ""
            scheme, sep, rest = header.partition(" ")
            if scheme.lower() == "bearer" and sep and rest and not rest.startswith(" "):
                token = rest.strip()
        if not token:
            raise HttpError(401, "unauthorized request: no access token")
        return self.auth.sessions.check_access(token)

    def _meta(self, request: Request) -> tuple[str | None, str | None]:
        agent = request.header("user-agent")
        return request.remote_addr, agent[:512] if agent else None

    # --- cookies -------------------------------------------------------------------------------
    def _cookie(self, name: str, value: str, path: str, max_age: int) -> tuple[str, str]:
        parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max(0, max_age)}"]
        if max_age <= 0:
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        parts += ["HttpOnly", "SameSite=Strict"] + (["Secure"] if self.secure else [])
        return "Set-Cookie", "; ".join(parts)

    def _set_cookies(self, issued: Issued) -> list[tuple[str, str]]:
        now = time.time()
        access_age = int(issued.access_claims["exp"]) - int(now)
        refresh_age = int(issued.session.expires_at - now)
        return [
            self._cookie("accessToken", issued.access_token, "/", access_age),
            self._cookie("refreshToken", issued.refresh_token, REFRESH_COOKIE_PATH, refresh_age),
        ]

    def _clear_cookies(self) -> list[tuple[str, str]]:
        return [
            self._cookie("accessToken", "", "/", 0),
            self._cookie("refreshToken", "", REFRESH_COOKIE_PATH, 0),
        ]

    def _cors(self, request: Request, response: Response) -> None:
        origin = (request.header("origin") or "").rstrip("/")
        if origin and origin in self.allowed_origins:
            response.headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
            if request.method == "OPTIONS":
                response.headers += [
                    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
                    ("Access-Control-Max-Age", "600"),
                ]

    # --- routes --------------------------------------------------------------------------------
    def register(self, request: Request) -> Response:
        body = self.body(request)
        fields = {
            name: self.text(body, name) for name in ("username", "email", "fullName", "password")
        }
        user = self.auth.users.create(
            username=fields["username"], email=fields["email"], full_name=fields["fullName"],
            password=fields["password"],
        )  # fmt: skip
        return Response(201, envelope(201, user.public(), "user registered"))

    def login(self, request: Request) -> Response:
        body = self.body(request)
        username = self.text(body, "username", required=False)
        email = self.text(body, "email", required=False)
        password = self.text(body, "password")
        if not username and not email:
            raise HttpError(
                400,
                "username or email is required",
                [{"field": "username", "message": "is required"}],
            )
        ip, agent = self._meta(request)
        issued = self.auth.login(username or email, password, ip=ip, user_agent=agent)
        data = {"user": issued.user.public(), "accessToken": issued.access_token}
        return Response(200, envelope(200, data, "user logged in"), self._set_cookies(issued))

    def refresh(self, request: Request) -> Response:
        token = request.cookies.get("refreshToken")
        if token:
            self._csrf(request)
        else:
            token = self.text(self.body(request), "refreshToken", required=False)
        if not token:
            raise HttpError(401, "unauthorized request: no refresh token")
        ip, agent = self._meta(request)
        try:
            issued = self.auth.sessions.refresh(token, ip=ip, user_agent=agent)
        except TokenError as exc:
            raise HttpError(
                401, f"unauthorized: {exc.message}", headers=self._clear_cookies()
            ) from exc
        data = {"accessToken": issued.access_token}
        return Response(
            200, envelope(200, data, "access token refreshed"), self._set_cookies(issued)
        )

    def logout(self, request: Request) -> Response:
        access = self.access(request, state_changing=True)
        self.auth.sessions.logout(access.session.id)
        return Response(200, envelope(200, {}, "user logged out"), self._clear_cookies())

    def logout_all(self, request: Request) -> Response:
        access = self.access(request, state_changing=True)
        ended = self.auth.sessions.logout_all(access.user.id)
        return Response(
            200,
            envelope(200, {"sessionsEnded": len(ended)}, "all sessions ended"),
            self._clear_cookies(),
        )

    def current_user(self, request: Request) -> Response:
        access = self.access(request)
        return Response(200, envelope(200, access.user.public(), "current user"))

    def list_sessions(self, request: Request) -> Response:
        access = self.access(request)
        now = time.time()
        found = self.auth.sessions.list(user_id=access.user.id)
        data = [
            {**s.public(now, access.user.username), "current": s.id == access.session.id}
            for s in found
        ]
        return Response(200, envelope(200, data, f"{len(data)} active session(s)"))

    def delete_session(self, request: Request) -> Response:
        access = self.access(request, state_changing=True)
        sid = request.path[len(f"{API}/sessions/") :]
        session = self.auth.store.get_session(sid) if 0 < len(sid) <= 64 else None
        if session is None or session.user_id != access.user.id:
            raise HttpError(404, "no such session")
        self.auth.sessions.logout(sid, reason="logout")
        headers = self._clear_cookies() if sid == access.session.id else []
        return Response(200, envelope(200, {"id": sid}, "session ended"), headers)

    def jwks(self, request: Request) -> Response:
        return Response(200, self.auth.keyring.jwks(), [("Cache-Control", "max-age=300")])

    def healthz(self, request: Request) -> Response:
        try:
            self.auth.store.ping()
        except StoreUnavailable as exc:
            self.log(f"jwtctl serve: health check: {exc.message}")
            raise HttpError(503, "store unavailable") from exc
        return Response(200, envelope(200, {"status": "ok", "store": self.auth.store.kind}, "ok"))
