"""Options shared by several commands, and how secrets are read (never from an argument)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..timeutil import parse_duration

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of text.")
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

_PROMPT_TRIES = 3


def duration_flag(value: str | None, flag: str) -> int | None:
    """A duration given as a flag (``--ttl 5m``), or a usage error naming the flag."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{flag}'") from None


def read_password_stdin() -> str:
    """One line from stdin, without its line ending (only the ending is stripped)."""
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput("password", "nothing on standard input (--password-stdin)")
    return line.removesuffix("\n").removesuffix("\r")


def read_new_password(from_stdin: bool) -> str:
    """A new password: from stdin with --password-stdin, else a hidden prompt asked twice."""
    if from_stdin:
        return read_password_stdin()
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            "standard input is not a terminal, so there is no one to ask; "
            "pipe the password in with --password-stdin",
            param_hint="'--password-stdin'",
        )
    import getpass

    for _ in range(_PROMPT_TRIES):
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") == first:
            return first
        sys.stderr.write("The passwords do not match; try again.\n")
    raise InvalidInput("password", f"the two entries did not match {_PROMPT_TRIES} times")


def confirm(question: str, *, yes: bool) -> bool:
    """Ask before a destructive change unless --yes. Reads the answer from stdin, so
    `echo y | jwtctl …` works too; end of input counts as no."""
    if yes:
        return True
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        sys.stderr.write("\n")
        return False
