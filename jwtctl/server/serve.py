"""`jwtctl serve`: a small HTTP/1.1 server for the WSGI app (standard library only).

Design (measured in bench/serve_vs_express.py): one acceptor and a few event-loop threads. Each
loop owns many non-blocking connections through a ``selectors`` selector, parses requests and runs
the WSGI app inline, so an idle keep-alive connection costs no thread and a request costs no
thread hand-off. Blocking work in the app (bcrypt, a store round trip) releases the GIL, so the
other loops keep serving meanwhile. On this 2-core machine this serves about 2.5 times the
requests per second of a thread-per-connection ``http.server`` and never lets idle clients
starve others.

* keep-alive and pipelining; ``TCP_NODELAY`` on accepted sockets; each response one ``send``;
* a deadline per request (head and body must arrive within ``--timeout``) and per idle
  connection, so a slow or silent client cannot hold anything for ever; bodies over the limit
  are refused (413) before they are read;
* malformed HTTP is answered 4xx with the API's JSON envelope, never 5xx;
* one access-log line per request, written in batches: address, method, path (never the query
  string), status, size, time; never a token, cookie or password;
* ``stop()``: stop accepting, finish the requests in flight, flush, close.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import json
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from .. import __version__
from ..errors import JwtctlError

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
MAX_CONNECTIONS = 1024
MAX_PENDING_OUTPUT = 1 << 20
SERVE_SLICE = 0.002  # seconds of queued requests a loop serves between two polls
SERVER = f"jwtctl/{__version__}"
_REASONS = {
    100: "Continue", 400: "Bad Request", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}  # fmt: skip
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _envelope(code: int, message: str) -> bytes:
    """The error envelope of the API, for failures below the application."""
    doc: dict[str, object] = {"statusCode": code, "data": None, "message": message}
    doc.update(success=False, errors=[])
    return json.dumps(doc).encode()


class _Date:
    value = (0, "")

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if cls.value[0] != second:
            cls.value = (second, formatdate(second, usegmt=True))
        return cls.value[1]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Conn:
    """One client connection and what is buffered for it."""

    __slots__ = ("addr", "closing", "continued", "deadline", "inbuf", "outbuf", "queued", "sock")

    def __init__(self, sock: socket.socket, addr: str, timeout: float) -> None:
        self.sock, self.addr = sock, addr
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closing = False  # close once outbuf is flushed
        self.continued = False  # 100 Continue sent for the request being received
        self.queued = False  # in the loop's queue of connections with a request to serve
        self.deadline = time.monotonic() + timeout


class Loop(threading.Thread):
    """An event loop: serves the connections handed to it, running the app inline."""

    def __init__(self, server: Server, index: int) -> None:
        super().__init__(name=f"jwtctl-loop-{index}", daemon=True)
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.incoming: list[tuple[socket.socket, str]] = []
        self.lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.conns: dict[socket.socket, Conn] = {}
        self.ready: collections.deque[Conn] = collections.deque()
        self._log: list[str] = []

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def adopt(self, sock: socket.socket, addr: str) -> None:
        with self.lock:
            self.incoming.append((sock, addr))
        self.wake()

    def run(self) -> None:
        """Poll, then serve one request from the queue; repeat. Connections with a complete
        request wait in arrival order, so a slow request (a login's bcrypt) delays the others
        of this loop fairly, first come first served."""
        next_sweep = time.monotonic() + 0.5
        while True:
            for key, mask in self.selector.select(0 if self.ready else 0.25):
                if key.data is None:
                    self._drain_wake()
                    continue
                conn: Conn = key.data
                if mask & selectors.EVENT_WRITE:
                    self._flush(conn)
                if mask & selectors.EVENT_READ and conn.sock in self.conns:
                    self._receive(conn)
            # Serve queued requests for up to ~2 ms, then poll again: fast requests batch, and
            # after a slow one (a login's bcrypt) newly arrived requests join the queue in order.
            started = time.perf_counter()
            while self.ready and time.perf_counter() - started < SERVE_SLICE:
                self._serve(self.ready.popleft())
            if len(self._log) >= 64 or not self.ready:
                self._write_log()
            now = time.monotonic()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + 0.5
            if self.server.closing and not self.ready and self._drained():
                break
        for conn in list(self.conns.values()):
            self._close(conn)
        self._write_log()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _drained(self) -> bool:
        """At shutdown: close idle connections; done when nothing is left to send."""
        for conn in list(self.conns.values()):
            if not conn.outbuf:
                self._close(conn)
        return not self.conns

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_r.recv(4096)
        with self.lock:
            incoming, self.incoming = self.incoming, []
        for sock, addr in incoming:
            sock.setblocking(False)
            conn = Conn(sock, addr, self.server.connection_timeout)
            self.conns[sock] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: Conn) -> None:
        if self.conns.pop(conn.sock, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
            with contextlib.suppress(OSError):
                conn.sock.close()
            self.server.connection_closed()

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline: idle ones quietly, a request that is still
        arriving with 408."""
        for conn in list(self.conns.values()):
            if now < conn.deadline:
                continue
            if conn.inbuf and not conn.outbuf:
                self._respond_error(conn, BadRequest(408, "request not received in time"), "-", "-")
                self._flush(conn)
            self._close(conn)

    def _receive(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if not conn.inbuf:
            conn.deadline = time.monotonic() + self.server.connection_timeout  # a new request
        conn.inbuf += data
        self._enqueue(conn)

    def _enqueue(self, conn: Conn) -> None:
        """Queue the connection if a request head has arrived and its output has room."""
        if (
            not conn.queued
            and not conn.closing
            and len(conn.outbuf) < MAX_PENDING_OUTPUT
            and (b"\n\n" in conn.inbuf or b"\r\n\r\n" in conn.inbuf or len(conn.inbuf) > MAX_HEAD)
        ):
            conn.queued = True
            self.ready.append(conn)

    def _serve(self, conn: Conn) -> None:
        """One request of this connection, then back to the end of the queue if it has more."""
        conn.queued = False
        if conn.sock not in self.conns:
            return
        served = self._one_request(conn)
        self._flush(conn)
        if served and conn.sock in self.conns:
            self._enqueue(conn)

    def _one_request(self, conn: Conn) -> bool:
        """Serve one complete request from the buffer. False when more input is needed."""
        buf = conn.inbuf
        end = buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end, sep = buf.find(b"\n\n"), 2
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._respond_error(conn, BadRequest(431, "request head too large"), "-", "-")
            return False
        started = time.perf_counter()
        method = path = "-"
        try:
            head = _parse_head(bytes(buf[:end]))
            method, path = head.method, head.target.partition("?")[0]
            length = _content_length(head.headers, self.server.max_body)
            if len(buf) < end + sep + length:
                if not conn.continued and "100-continue" in head.headers.get("expect", "").lower():
                    conn.outbuf += b"HTTP/1.1 100 Continue\r\n\r\n"
                    conn.continued = True
                return False
            body = bytes(buf[end + sep : end + sep + length])
            del buf[: end + sep + length]
            conn.continued = False
            status, size = self._call_app(conn, head, body)
        except BadRequest as exc:
            self._respond_error(conn, exc, method, path)
            return False
        self._access(conn, method=method, path=path, status=status, size=size, started=started)
        conn.deadline = time.monotonic() + self.server.connection_timeout
        return True

    def _call_app(self, conn: Conn, head: Head, body: bytes) -> tuple[int, int]:
        method, headers, keep_alive = head.method, head.headers, head.keep_alive
        path, _, query = head.target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "CONTENT_LENGTH": headers.get("content-length", ""),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": head.version,
            "REMOTE_ADDR": conn.addr,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            if name not in ("content-type", "content-length"):
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []

        def start_response(
            status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, response_headers]
            return lambda data: None

        try:
            result = self.server.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            status_line, response_headers = started
        except Exception:  # the application failed: 500, logged, connection closed
            self.server.log("jwtctl serve: the application raised\n" + traceback.format_exc())
            status_line = "500 Internal Server Error"
            response_headers = [("Content-Type", "application/json; charset=utf-8")]
            payload = _envelope(500, "internal server error")
            keep_alive = False
        if method == "HEAD":
            payload = b""
        conn.closing = conn.closing or not keep_alive or self.server.closing
        conn.outbuf += (
            _response_head(status_line, response_headers, len(payload), conn.closing) + payload
        )
        return int(status_line.split(" ", 1)[0]), len(payload)

    def _respond_error(self, conn: Conn, exc: BadRequest, method: str, path: str) -> None:
        """Errors in the HTTP itself: 4xx with the envelope; the connection then closes."""
        status = exc.status if 400 <= exc.status < 500 else 400
        payload = _envelope(status, exc.message)
        line = f"{status} {_REASONS.get(status, 'Bad Request')}"
        conn.closing = True
        conn.inbuf.clear()
        conn.outbuf += _response_head(
            line, [("Content-Type", "application/json; charset=utf-8")], len(payload), True
        )
        conn.outbuf += payload
        self._access(
            conn,
            method=method,
            path=path,
            status=status,
            size=len(payload),
            started=time.perf_counter(),
        )

    def _flush(self, conn: Conn) -> None:
        while conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(conn)
                return
            del conn.outbuf[:sent]
        if conn.outbuf:
            self.selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            return
        if conn.closing:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            self._close(conn)
            return
        key = self.selector.get_key(conn.sock)
        if key.events != selectors.EVENT_READ:
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
            self._enqueue(conn)  # pipelined requests waited for the output to drain

    def _access(
        self, conn: Conn, *, method: str, path: str, status: int, size: int, started: float
    ) -> None:
        shown = path[:200].encode("ascii", "backslashreplace").decode("ascii")
        took = (time.perf_counter() - started) * 1000
        self._log.append(f'{conn.addr} "{method[:16]} {shown}" {status} {size}B {took:.1f}ms')

    def _write_log(self) -> None:
        if self._log:
            lines, self._log = self._log, []
            self.server.log("\n".join(lines))


class Head(NamedTuple):
    method: str
    target: str
    version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def _parse_head(head: bytes) -> Head:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest(400, "request head is not text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if len(target) > 8192:
        raise BadRequest(414, "request target too long")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, f"unsupported protocol {version[:16]!r} (HTTP/1.1 or HTTP/1.0)")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name:
            raise BadRequest(400, "malformed header field")
        key = name.lower()
        value = value.strip()
        if key in headers:
            if key in ("content-length", "host", "authorization"):
                if headers[key] != value:
                    raise BadRequest(400, f"conflicting {name} header fields")
                continue
            value = f"{headers[key]}, {value}" if key != "cookie" else f"{headers[key]}; {value}"
        headers[key] = value
    return Head(method.upper(), target, version, headers)


def _content_length(headers: dict[str, str], limit: int) -> int:
    if "transfer-encoding" in headers:
        raise BadRequest(411, "send the body with Content-Length (chunked bodies are not accepted)")
    raw = headers.get("content-length", "0").strip() or "0"
    if not raw.isdigit() or len(raw) > 15:
        raise BadRequest(400, "bad Content-Length")
    length = int(raw)
    if length > limit:
        raise BadRequest(413, f"request body is {length} bytes; the limit is {limit}")
    return length


def _response_head(
    status_line: str, headers: list[tuple[str, str]], length: int, close: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status_line}"]
    lines += [
        f"{k}: {v}"
        for k, v in headers
        if k.lower() not in ("content-length", "connection", "date", "server")
    ]
    lines += [f"Content-Length: {length}", f"Date: {_Date.now()}", f"Server: {SERVER}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")  # one write: lines from several loops never interleave
    sys.stderr.flush()


class Server:
    """Listens on ``address`` and serves ``app`` with ``threads`` event loops."""

    def __init__(
        self,
        address: tuple[str, int],
        app: WSGIApp,
        *,
        log: Callable[[str], None] | None = None,
        threads: int = 4,
        connection_timeout: float = 15.0,
        max_body: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.log = log or _stderr
        self.connection_timeout = connection_timeout
        self.max_body = max_body
        self.closing = False
        self.socket = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only
        try:
            self.socket.bind(address)
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.loops = [Loop(self, i) for i in range(max(1, threads))]
        self._connections = 0
        self._count_lock = threading.Lock()
        self._stopped = threading.Event()
        self._accepting = threading.Event()

    def connection_closed(self) -> None:
        with self._count_lock:
            self._connections -= 1

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        for loop in self.loops:
            loop.start()
        self.socket.settimeout(poll_interval)
        self._accepting.set()
        turn = 0
        try:
            while not self.closing:
                try:
                    sock, addr = self.socket.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        time.sleep(0.05)  # out of descriptors: let connections close
                    continue
                with self._count_lock:
                    full = self._connections >= MAX_CONNECTIONS
                    if not full:
                        self._connections += 1
                if full:
                    sock.close()
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.loops[turn % len(self.loops)].adopt(sock, str(addr[0]))
                turn += 1
        finally:
            self._stopped.set()

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; let every loop finish what is in flight, then close."""
        self.closing = True
        if self._accepting.is_set():
            self._stopped.wait(grace)
        with contextlib.suppress(OSError):
            self.socket.close()
        deadline = time.monotonic() + grace
        for loop in self.loops:
            loop.wake()
        for loop in self.loops:
            if loop.is_alive():
                loop.join(max(0.0, deadline - time.monotonic()))


def bind(host: str, port: int, app: WSGIApp, **options: Any) -> Server:
    try:
        return Server((host, port), app, **options)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise JwtctlError(
                f"{host}:{port} is already in use; stop the other server or pick --port"
            ) from exc
        raise JwtctlError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def run(server: Server, *, on_stop: Callable[[], None] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C, then shut down cleanly. Returns the exit code (0)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="jwtctl-accept")
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
