"""The real entry points in real processes: `jwtctl`, `python -m jwtctl`, signals, --debug,
and the layering rule that the core never imports the CLI's libraries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jwtctl import __version__

JWTCTL = shutil.which("jwtctl", path=str(Path(sys.executable).parent)) or "jwtctl"


def run(
    *args: str, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=input, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def test_installed_entry_point_and_module_agree() -> None:
    assert run(JWTCTL, "--version").stdout == f"jwtctl {__version__}\n"
    assert run(sys.executable, "-m", "jwtctl", "--version").stdout == f"jwtctl {__version__}\n"


def test_entry_point_does_real_work() -> None:
    created = run(JWTCTL, "user", "create", "alice", "--email", "a@example.com", "--password-stdin",
                  input="correct horse battery\n")  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = run(sys.executable, "-m", "jwtctl", "user", "show", "alice", "--json")
    assert shown.returncode == 0 and '"username": "alice"' in shown.stdout


def test_usage_errors_exit_2_in_clicks_format() -> None:
    result = run(JWTCTL, "user", "list", "--bogus")
    assert result.returncode == 2
    assert "No such option" in result.stderr and "Usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_are_one_line_and_debug_adds_the_traceback() -> None:
    plain = run(JWTCTL, "user", "show", "nobody")
    assert (plain.returncode, plain.stderr) == (4, "jwtctl: error: no such user: nobody\n")
    debug = run(JWTCTL, "--debug", "user", "show", "nobody")
    assert debug.returncode == 4
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith("jwtctl: error: no such user: nobody")


def test_ctrl_c_exits_130() -> None:
    proc = subprocess.Popen(
        [JWTCTL, "user", "create", "alice", "--email", "a@example.com", "--password-stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)  # let it reach the read of standard input
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_no_args_shows_help() -> None:
    result = run(JWTCTL)
    assert "Usage:" in result.stdout + result.stderr
    assert "user" in result.stdout + result.stderr


@pytest.mark.parametrize("module", ["jwtctl.users", "jwtctl.store.sqlite", "jwtctl.store.memory",
                                    "jwtctl.store.mongo", "jwtctl.config", "jwtctl.passwords"])  # fmt: skip
def test_core_never_imports_cli_libraries(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click')))"
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
