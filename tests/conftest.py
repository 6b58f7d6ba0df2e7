"""Shared fixtures: a clean environment and home per test, the three stores, the CLI runner, and
the MongoDB test server.

MongoDB: when ``JWTCTL_TEST_MONGO_URI`` is set, tests use that server. Otherwise the suite starts
SecantusDB (a MongoDB wire-protocol server) from ``JWTCTL_TEST_SECANTUSD`` or
``.venv-mongo/bin/secantusd-py`` (``scripts/test`` installs it). If neither is available the
MongoDB tests fail; they are never skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jwtctl.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent

_ENV_NAMES = (
    "JWTCTL_HOME", "JWTCTL_DB", "JWTCTL_DB_NAME", "JWTCTL_ACCESS_SECRET", "JWTCTL_REFRESH_SECRET",
    "JWTCTL_ACCESS_TTL", "JWTCTL_REFRESH_TTL", "JWTCTL_SESSION_MAX_AGE", "JWTCTL_REFRESH_GRACE",
    "JWTCTL_ISSUER", "JWTCTL_AUDIENCE", "JWTCTL_ALG", "JWTCTL_KEYS", "JWTCTL_BCRYPT_ROUNDS",
    "JWTCTL_LOGIN_MAX_FAILURES", "JWTCTL_LEEWAY", "JWTCTL_MAX_BODY", "JWTCTL_CONFIG",
    "ACCESS_TOKEN_SECRET", "ACCESS_TOKEN_EXPIRY", "REFRESH_TOKEN_SECRET", "REFRESH_TOKEN_EXPIRY",
    "MONGODB_URI", "NO_COLOR", "XDG_DATA_HOME",
)  # fmt: skip
TEST_ROUNDS = "4"  # bcrypt cost for tests that are not about bcrypt's cost


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test: no jwtctl variables from outside, a fresh JWTCTL_HOME, cwd in tmp_path."""
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("JWTCTL_HOME", str(home))
    monkeypatch.setenv("JWTCTL_BCRYPT_ROUNDS", TEST_ROUNDS)
    monkeypatch.chdir(tmp_path)
    return home


# --- MongoDB test server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secantusd_path() -> Path | None:
    explicit = os.environ.get("JWTCTL_TEST_SECANTUSD")
    candidate = Path(explicit) if explicit else ROOT / ".venv-mongo" / "bin" / "secantusd-py"
    return candidate if candidate.exists() else None


@dataclass
class MongoServer:
    """A SecantusDB process the tests own (start, stop, restart on the same port and data)."""

    exe: Path
    port: int
    storage: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.exe), "--host", "127.0.0.1", "--port", str(self.port),
                 "--storage-path", self.storage, "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        import pymongo

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SecantusDB exited with {self.proc.returncode}; see {self.log}")
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                self.uri, serverSelectionTimeoutMS=500
            )
            try:
                client.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                time.sleep(0.2)
            finally:
                client.close()
        raise RuntimeError(f"SecantusDB did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def start_mongo_server(tmp: Path, *, persistent: bool) -> MongoServer:
    exe = secantusd_path()
    if exe is None:
        pytest.fail(
            "no MongoDB test server: set JWTCTL_TEST_MONGO_URI, or install SecantusDB with "
            "`scripts/test` (it creates .venv-mongo); MongoDB tests never skip",
            pytrace=False,
        )
    storage = str(tmp / "mongo-data") if persistent else ":memory:"
    server = MongoServer(exe, free_port(), storage, tmp / "secantusd.log")
    server.start()
    return server


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    explicit = os.environ.get("JWTCTL_TEST_MONGO_URI")
    if explicit:
        yield explicit
        return
    server = start_mongo_server(tmp_path_factory.mktemp("mongo"), persistent=False)
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def restartable_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A SecantusDB of this test's own, on disk, that the test may stop and start again."""
    if os.environ.get("JWTCTL_TEST_MONGO_URI"):
        pytest.fail(
            "this test stops and restarts its own SecantusDB; it needs .venv-mongo", pytrace=False
        )
    server = start_mongo_server(tmp_path, persistent=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo_db_url(mongo_uri: str) -> Iterator[str]:
    """A store URL for a database of this test's own, dropped afterwards."""
    import pymongo

    name = f"jwtctl_test_{uuid.uuid4().hex[:12]}"
    base, _, query = mongo_uri.partition("?")
    url = f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")
    yield url
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_uri)
    client.drop_database(name)
    client.close()


# --- stores --------------------------------------------------------------------------------------

STORE_KINDS = ["memory", "sqlite", pytest.param("mongo", marks=pytest.mark.mongo)]


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory:"
    if kind == "sqlite":
        return f"sqlite:///{str(tmp_path / 'store.db').lstrip('/')}"
    return str(request.getfixturevalue("mongo_db_url"))


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh store of each kind (memory:, a SQLite file, a MongoDB database)."""
    return store_url(store_kind, request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that outlives one CLI invocation: a SQLite file or a MongoDB database."""
    return store_url(str(request.param), request, tmp_path)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    s.init()
    yield s
    s.close()
