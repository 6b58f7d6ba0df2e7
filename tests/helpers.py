"""Helpers for tests: run the CLI in-process and get exit code, stdout and stderr apart."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.testing import CliRunner

from jwtctl.cli import app

PUBLIC_USER_KEYS = {
    "_id",
    "username",
    "email",
    "fullName",
    "roles",
    "disabled",
    "createdAt",
    "updatedAt",
}
"""The public user of SPEC §6: what every user-shaped answer carries, and nothing more."""


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def jwtctl(
    *args: str, input: str | bytes | None = None, env: Mapping[str, str | None] | None = None
) -> Run:
    """Run `jwtctl ARGS…` through Typer's CliRunner, as a user would from a shell."""
    result = CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def create_user(name: str, password: str = "correct horse battery", *extra: str) -> Run:
    run = jwtctl("user", "create", name, "--email", f"{name}@example.com", "--password-stdin",
                 *extra, input=password + "\n")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    return run


def leaf_commands() -> dict[str, Any]:
    """Every command of the CLI ("user create", "serve", …) and its Click command object."""
    found: dict[str, Any] = {}

    def walk(prefix: str, cmd: Any) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found[prefix] = cmd

    walk("", typer.main.get_command(app))
    return found
