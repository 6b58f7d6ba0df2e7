"""Terminal behaviour, under a real pseudo-terminal of 80 columns: tables fit, colour only on a
terminal and never with NO_COLOR or --no-color, progress only on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.helpers import create_user, jwtctl

JWTCTL = shutil.which("jwtctl", path=str(Path(sys.executable).parent)) or "jwtctl"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = set("─│┌┐└┘├┤┬┴┼━┃╭╮╯╰")


def in_terminal(*args: str, env: dict[str, str] | None = None, columns: int = 80) -> str:
    """Run jwtctl with stdin, stdout and stderr on a pty of the given width; return the output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), **(env or {})}
    proc = subprocess.Popen(
        [JWTCTL, *args], stdin=slave, stdout=slave, stderr=slave, env=full_env, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(30)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def sessions() -> None:
    create_user("alice")
    for _ in range(3):
        jwtctl("token", "issue", "alice")


def test_wide_tables_fit_80_columns_on_a_terminal() -> None:
    sessions()
    text = in_terminal("sessions", "list")
    plain = ANSI.sub("", text)
    lines = [line for line in plain.replace("\r", "").split("\n") if line.strip()]
    assert len(lines) >= 4
    assert max(len(line) for line in lines) <= 80
    assert BOX & set(plain)  # a table on a terminal
    assert ANSI.search(text)  # and colour / styles
    ids = [s["id"] for s in jwtctl("sessions", "list", "--json").json()]
    assert all(sid in plain for sid in ids)  # the key column is never cut


def test_no_color_and_the_flag_turn_colour_off() -> None:
    sessions()
    for text in (in_terminal("user", "show", "alice", env={"NO_COLOR": "1"}),
                 in_terminal("--no-color", "user", "show", "alice")):  # fmt: skip
        assert not re.search(
            r"\x1b\[[0-9;]*m", text.replace("\x1b[?25l", "").replace("\x1b[?25h", "")
        )


def test_piped_output_has_no_colour_or_boxes() -> None:
    sessions()
    run = jwtctl("sessions", "list")
    assert run.exit_code == 0
    assert not ANSI.search(run.stdout) and not BOX & set(run.stdout)


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "u.jsonl"
    source.write_text(
        "".join(
            f'{{"username": "u{i}", "email": "u{i}@example.com", "password": "password {i:03d}"}}\n'
            for i in range(30)
        )
    )
    on_tty = ANSI.sub("", in_terminal("user", "import", str(source)))
    assert "importing 30 users" in on_tty and "30/30" in on_tty
    piped = jwtctl("user", "import", str(source), "--dry-run")
    assert "importing" not in piped.stderr and "checking" not in piped.stderr
