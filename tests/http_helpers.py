"""A real server on 127.0.0.1:0 in this process (the same Server and App `jwtctl serve` runs),
and a small HTTP client with a cookie jar, for the server tests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jwtctl.auth import Auth
from jwtctl.server.app import App
from jwtctl.server.serve import Server


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> dict[str, str]:
        """name -> the whole Set-Cookie value (attributes included)."""
        out = {}
        for k, v in self.headers:
            if k.lower() == "set-cookie":
                out[v.split("=", 1)[0]] = v
        return out


@dataclass
class Client:
    base: str
    jar: dict[str, str] = field(default_factory=dict)
    keep_alive: http.client.HTTPConnection | None = None

    def _conn(self) -> http.client.HTTPConnection:
        host, port = self.base.removeprefix("http://").split(":")
        return http.client.HTTPConnection(host, int(port), timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: bool = True,
        reuse: bool = False,
    ) -> Reply:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if cookies and self.jar and "Cookie" not in hdrs:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        conn = self.keep_alive if reuse and self.keep_alive else self._conn()
        if reuse:
            self.keep_alive = conn
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.getheaders(), resp.read())
        if not reuse:
            conn.close()
        for name, value in reply.cookies().items():
            token = value.split(";", 1)[0].split("=", 1)[1]
            if "Max-Age=0" in value:
                self.jar.pop(name, None)
            else:
                self.jar[name] = token
        return reply

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)


@contextmanager
def running(
    app: App | Any, *, timeout: float = 15.0, log: list[str] | None = None
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:0 in a thread; yields the base URL."""
    lines = log if log is not None else []
    server = Server(("127.0.0.1", 0), app, log=lines.append, connection_timeout=timeout)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stop(grace=5)
        thread.join(5)


def make_app(auth: Auth, **kw: Any) -> App:
    return App(auth, log=lambda _line: None, **kw)
