"""Docs that stay true: every command and option appears in the README's CLI reference, and
every command's --help has a description and at least one example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from jwtctl.cli import app
from jwtctl.config import variables
from tests.helpers import jwtctl, leaf_commands

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(path: str) -> str:
    match = re.search(rf"^### `jwtctl {re.escape(path)}`\n(.*?)(?=^##)", README, re.M | re.S)
    assert match, f"README has no section '### `jwtctl {path}`'"
    return match.group(1)


COMMANDS = sorted(leaf_commands())


@pytest.mark.parametrize("path", COMMANDS)
def test_every_command_and_option_is_in_the_readme(path: str) -> None:
    text = section(path)
    cmd = leaf_commands()[path]
    for param in cmd.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert opt in text, f"README section for `jwtctl {path}` does not mention {opt}"


@pytest.mark.parametrize("path", COMMANDS)
def test_every_command_has_help_and_an_example(path: str) -> None:
    run = jwtctl(*path.split(), "--help")
    assert run.exit_code == 0
    cmd = leaf_commands()[path]
    assert cmd.help and len(cmd.help.strip()) > 20
    assert "Examples:" in run.stdout
    assert f"jwtctl {path}" in run.stdout.split("Examples:", 1)[1]
    for param in cmd.params:
        if param.opts[0].startswith("--") and param.opts[0] != "--help":
            assert param.help, f"`jwtctl {path}` option {param.opts[0]} has no help"


def test_every_setting_is_in_the_configuration_table() -> None:
    for _name, env_names, _kind in variables():
        for var in env_names:
            assert f"`{var}`" in README, var


def test_global_options_are_documented() -> None:
    root = typer.main.get_command(app)
    for param in root.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in (
                "--help",
                "--install-completion",
                "--show-completion",
            ):
                assert opt in README, opt
