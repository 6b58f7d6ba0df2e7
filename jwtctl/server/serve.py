"""`jwtctl serve`: a small multi-threaded HTTP/1.1 server for the WSGI app (standard library).

* keep-alive, with Nagle's algorithm off on accepted sockets and each response written in one
  piece (a standard-library server with keep-alive and Nagle on stalls near 700 requests/s);
* a per-connection timeout, so a slow or silent client cannot hold a thread for ever, and a
  bounded pool of handler threads;
* malformed HTTP is answered 4xx with the JSON envelope, never 5xx;
* one access-log line per request: address, method, path (never the query string), status,
  size and time; never a token, cookie or password;
* SIGTERM or Ctrl-C: stop accepting, let in-flight requests finish, close idle connections.
"""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import unquote_to_bytes

from .. import __version__
from ..errors import JwtctlError

MAX_DRAIN = 1 << 20  # unread request bodies up to this size are drained to keep the connection
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}


def _envelope(code: int, message: str) -> bytes:
    """The error envelope of the API, for failures below the application."""
    doc: dict[str, object] = {
        "statusCode": code,
        "data": None,
        "message": message,
        "success": False,
        "errors": [],
    }
    return json.dumps(doc).encode()


class _Body:
    """wsgi.input: at most Content-Length bytes of the request body."""

    def __init__(self, rfile: Any, length: int) -> None:
        self.rfile, self.remaining = rfile, length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self.rfile.read(size)
        self.remaining -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        limit = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self.rfile.readline(limit) if limit > 0 else b""
        self.remaining -= len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        while line := self.readline():
            lines.append(line)
            if 0 < hint <= sum(map(len, lines)):
                break
        return lines

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"jwtctl/{__version__}"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.busy = False
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return  # our own access log, written in run_wsgi

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(414, "request line too long")
                return
            self.busy = True
            if not self.parse_request():
                return
            self.run_wsgi()
        except TimeoutError:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        finally:
            self.busy = False
            if self.server.closing:
                self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors in the HTTP itself (bad request line, too many headers, HTTP/2 preface):
        the JSON envelope, always 4xx, and the connection closes."""
        code = code if 400 <= code < 500 else 400
        body = _envelope(code, message or _REASONS.get(code, "bad request"))
        self.close_connection = True
        self._write(code, [("Content-Type", "application/json; charset=utf-8")], body)
        self._log(code, len(body), time.perf_counter())

    def _write(self, code: int, headers: list[tuple[str, str]], body: bytes) -> None:
        reason = _REASONS.get(code) or self.responses.get(code, ("",))[0]
        lines = [f"HTTP/1.1 {code} {reason}"]
        lines += [
            f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length", "connection")
        ]
        lines += [
            f"Content-Length: {len(body)}",
            f"Date: {self.server.date()}",
            f"Server: {self.server_version}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _log(self, status: int, size: int, started: float) -> None:
        path = getattr(self, "path", "") or ""
        path = path.split("?", 1)[0][:200].encode("ascii", "backslashreplace").decode("ascii")
        method = (getattr(self, "command", None) or "-")[:16]
        took = (time.perf_counter() - started) * 1000
        self.server.log(f'{self.client_address[0]} "{method} {path}" {status} {size}B {took:.1f}ms')

    def run_wsgi(self) -> None:
        started = time.perf_counter()
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(
                411, "send the body with Content-Length (chunked bodies are not accepted)"
            )
            return
        lengths = self.headers.get_all("Content-Length") or []
        raw = lengths[0].strip() if lengths else "0"
        if len(set(lengths)) > 1 or not raw.isdigit():
            self.send_error(400, "bad Content-Length")
            return
        length = int(raw)
        path, _, query = self.path.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        body = _Body(self.rfile, length)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length) if lengths else "",
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        status_line: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status_line[:] = [status]
            headers[:] = response_headers
            return lambda data: None

        try:
            chunks = self.server.app(environ, start_response)
            try:
                payload = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()
        except Exception:  # the application failed: 500, logged, connection closed
            import traceback

            self.server.log("jwtctl serve: the application raised\n" + traceback.format_exc())
            status_line[:] = ["500 Internal Server Error"]
            headers[:] = [("Content-Type", "application/json; charset=utf-8")]
            payload = _envelope(500, "internal server error")
            self.close_connection = True
        if body.remaining > MAX_DRAIN:
            self.close_connection = True
        elif body.remaining:
            body.read()
        code = int(status_line[0].split(" ", 1)[0])
        if self.command == "HEAD":
            payload = b""
        self._write(code, headers, payload)
        self._log(code, len(payload), started)


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # TIME_WAIT only: a second listener on the port still fails
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: Callable[..., Iterable[bytes]],
        *,
        log: Callable[[str], None] | None = None,
        threads: int = 64,
        connection_timeout: float = 15.0,
    ) -> None:
        self.app = app
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.connection_timeout = connection_timeout
        self.closing = False
        self._slots = threading.BoundedSemaphore(threads)
        self._handlers: set[Handler] = set()
        self._handlers_lock = threading.Lock()
        self._workers: set[threading.Thread] = set()
        self._date = (0, "")
        super().__init__(address, Handler)

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def track(self, handler: Handler, alive: bool) -> None:
        with self._handlers_lock:
            (self._handlers.add if alive else self._handlers.discard)(handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # at most `threads` connections served at once; others wait

        def work() -> None:
            try:
                self.process_request_thread(request, client_address)
            finally:
                self._slots.release()
                with self._handlers_lock:
                    self._workers.discard(threading.current_thread())

        thread = threading.Thread(target=work, daemon=True)
        with self._handlers_lock:
            self._workers.add(thread)
        thread.start()

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle keep-alive connections, wait for in-flight requests."""
        self.closing = True
        self.shutdown()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._handlers_lock:
                idle = [h for h in self._handlers if not h.busy]
                workers = list(self._workers)
            for handler in idle:
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RD)
            if not workers:
                break
            workers[0].join(0.05)
        self.server_close()


def bind(host: str, port: int, app: Callable[..., Iterable[bytes]], **options: Any) -> Server:
    try:
        return Server((host, port), app, **options)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise JwtctlError(
                f"{host}:{port} is already in use; stop the other server or pick --port"
            ) from exc
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise JwtctlError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        raise JwtctlError(f"cannot listen on {host}:{port}: {exc}") from exc


def run(server: Server, *, on_stop: Callable[[], None] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C, then shut down cleanly. Returns the exit code (0)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if on_stop is not None:
            on_stop()
        server.stop()
        thread.join(5)
    return 0
