"""Shared by the benchmarks: a MongoDB test server (SecantusDB from .venv-mongo, as the tests use)
started on a free loopback port, or the URI given with --mongo."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mongo_server(uri: str | None = None, *, persistent: bool = False) -> Iterator[str]:
    """Yield a MongoDB URI: ``uri`` if given, else a SecantusDB this process starts and stops."""
    if uri:
        yield uri
        return
    exe = ROOT / ".venv-mongo" / "bin" / "secantusd-py"
    if not exe.exists():
        raise SystemExit(
            "no MongoDB test server: run scripts/test (it installs .venv-mongo) or pass --mongo"
        )
    import pymongo

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        storage = str(Path(tmp) / "data") if persistent else ":memory:"
        log = (Path(tmp) / "secantusd.log").open("wb")
        argv = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage]
        proc = subprocess.Popen(
            [*argv, "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT
        )
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        try:
            deadline = time.monotonic() + 60
            while True:
                client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                    url, serverSelectionTimeoutMS=500
                )
                try:
                    client.admin.command("ping")
                    break
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("SecantusDB did not start") from None
                    time.sleep(0.2)
                finally:
                    client.close()
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
