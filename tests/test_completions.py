"""Shell completions: the committed scripts are what the app generates, and completion of
commands, user names and session ids works through Click's protocol."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import create_user, jwtctl

ROOT = Path(__file__).resolve().parent.parent
JWTCTL = shutil.which("jwtctl", path=str(Path(sys.executable).parent)) or "jwtctl"


def complete(env: dict[str, str]) -> str:
    result = subprocess.run(
        [JWTCTL], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_match_the_app(shell: str) -> None:
    generated = complete({"_JWTCTL_COMPLETE": f"source_{shell}"})
    committed = (ROOT / "completions" / f"jwtctl.{shell}").read_text()
    assert generated == committed, (
        f"completions/jwtctl.{shell} is stale: run scripts/gen-completions"
    )


def test_commands_complete() -> None:
    assert complete(
        {"COMP_WORDS": "jwtctl se", "COMP_CWORD": "1", "_JWTCTL_COMPLETE": "complete_bash"}
    ).split() == [
        "serve",
        "sessions",
    ]


def test_user_names_and_session_ids_complete_from_the_store() -> None:
    create_user("alice")
    create_user("albert")
    create_user("bob")
    words = {
        "COMP_WORDS": "jwtctl user show al",
        "COMP_CWORD": "3",
        "_JWTCTL_COMPLETE": "complete_bash",
    }
    assert sorted(complete(words).split()) == ["albert", "alice"]
    sid = jwtctl("token", "issue", "bob", "--json").json()["sessionId"]
    words = {
        "COMP_WORDS": f"jwtctl sessions show {sid[:20]}",
        "COMP_CWORD": "3",
        "_JWTCTL_COMPLETE": "complete_bash",
    }
    assert complete(words).split() == [sid]


def test_completion_never_fails_when_the_store_is_down() -> None:
    env = {
        "JWTCTL_DB": "mongodb://127.0.0.1:9/",
        "COMP_WORDS": "jwtctl user show a",
        "COMP_CWORD": "3",
        "_JWTCTL_COMPLETE": "complete_bash",
    }
    assert complete(env).strip() == ""


def test_install_completion_keeps_working(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    result = subprocess.run(
        [JWTCTL, "--install-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    installed = list(tmp_path.rglob("*jwtctl*"))
    assert installed, result.stdout
    assert "_JWTCTL_COMPLETE" in "".join(p.read_text() for p in installed if p.is_file())
