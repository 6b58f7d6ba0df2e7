"""Start-up regression tests (no timings; bench/startup.py measures those): the commands scripts
run in loops must not load modules they do not need."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tests.helpers import create_user, jwtctl

HEAVY = ("pymongo", "bcrypt", "cryptography", "rich.console", "pydantic", "jwt")
PROBE = """
import contextlib, io, sys
sys.argv = ["jwtctl", *sys.argv[1:]]
from jwtctl.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(code, sorted({m for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")}))
""".replace("HEAVY", repr(HEAVY))


def loaded(*args: str) -> tuple[int, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60, check=True,
    )  # fmt: skip
    code, _, modules = result.stdout.strip().partition(" ")
    names: list[str] = ast.literal_eval(modules)
    roots = {"rich.console" if m.startswith("rich.console") else m.split(".")[0] for m in names}
    return int(code), roots


@pytest.fixture
def token() -> str:
    create_user("alice")
    return jwtctl("token", "issue", "alice").stdout.strip()


def test_decode_loads_nothing_heavy(token: str) -> None:
    assert loaded("token", "decode", token) == (0, set())
    assert loaded("token", "decode", token, "--json") == (0, set())
    assert loaded("token", "decode", "garbage") == (3, set())


def test_offline_hs256_verify_loads_nothing_heavy(token: str) -> None:
    assert loaded("token", "verify", token, "--offline") == (0, set())


def test_verify_against_sqlite_needs_no_mongo_or_crypto(token: str) -> None:
    assert loaded("token", "verify", token) == (0, set())


def test_help_loads_nothing_heavy() -> None:
    assert loaded("--help") == (0, set())
    assert loaded("token", "decode", "--help") == (0, set())
