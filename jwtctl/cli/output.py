"""The one renderer: JSON for machines, rich tables and colour for people on a terminal, plain
aligned text when stdout is a pipe. Data goes to stdout, diagnostics to stderr. rich is imported
only when a terminal will show its output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def color_allowed(no_color_flag: bool = False, stream: TextIO | None = None) -> bool:
    """Colour only on a terminal, never with --no-color or NO_COLOR set (any value)."""
    stream = sys.stdout if stream is None else stream
    if no_color_flag or "NO_COLOR" in os.environ:
        return False
    return stream.isatty()


class Output:
    def __init__(self, *, json_mode: bool = False, no_color: bool = False) -> None:
        self.json_mode = json_mode
        self.tty = sys.stdout.isatty()
        self.color = color_allowed(no_color)
        self._console: Console | None = None

    # --- machine output ----------------------------------------------------------------------
    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def emit(self, data: Any, human: Callable[[Output], None]) -> None:
        """The usual ending of a command: JSON with --json, else the human rendering."""
        if self.json_mode:
            self.json(data)
        else:
            human(self)

    # --- human output ------------------------------------------------------------------------
    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                no_color=not self.color,
                highlight=False,
                soft_wrap=False,
                emoji=False,
                force_terminal=self.tty and self.color,
            )
        return self._console

    def line(self, text: str = "", *, style: str | None = None) -> None:
        if self.tty and style and self.color:
            from rich.text import Text

            self.console.print(Text(text, style=style))
        else:
            sys.stdout.write(text + "\n")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        title: str | None = None,
        droppable: Sequence[str] = (),
    ) -> None:
        """A table: rich on a terminal, aligned plain text otherwise. On a narrow terminal the
        ``droppable`` columns go first (least important first), then the rest shrink; the first
        column, the key people copy (an id, a username), is never cut."""
        if not self.tty:
            self._plain_table(columns, rows, title)
            return
        from rich.box import SIMPLE_HEAD
        from rich.table import Table

        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        keep = list(range(len(columns)))
        for name in droppable:
            if sum(widths[i] + 3 for i in keep) + 1 <= self.console.width:
                break
            if name in columns:
                keep.remove(list(columns).index(name))
        table = Table(title=title, box=SIMPLE_HEAD, header_style="bold", title_justify="left")
        for n, i in enumerate(keep):
            last = n == len(keep) - 1
            table.add_column(
                columns[i],
                overflow="fold" if last else "ellipsis",
                no_wrap=not last,
                min_width=widths[i] if n == 0 else None,
            )
        for row in rows:
            table.add_row(*(row[i] for i in keep))
        self.console.print(table)

    @staticmethod
    def _plain_table(
        columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None
    ) -> None:
        if title:
            sys.stdout.write(title + "\n")
        widths = [len(c) for c in columns]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for row in [list(columns), *rows]:
            cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
            sys.stdout.write("  ".join(cells).rstrip() + "\n")

    def fields(self, pairs: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
        """A record as 'key: value' lines (a two-column table on a terminal)."""
        if self.tty:
            from rich.table import Table

            table = Table(
                show_header=False, box=None, title=title, title_justify="left", pad_edge=False
            )
            table.add_column(style="bold")
            table.add_column(overflow="fold")
            for key, value in pairs:
                table.add_row(key, value)
            self.console.print(table)
            return
        if title:
            sys.stdout.write(title + "\n")
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            sys.stdout.write(f"{key + ':':<{width + 1}} {value}\n")


def note(message: str) -> None:
    """A diagnostic for people, on stderr (never mixed with data on stdout)."""
    sys.stderr.write(f"jwtctl: {message}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"jwtctl: warning: {message}\n")
    sys.stderr.flush()


def progress_enabled() -> bool:
    """Progress goes to stderr, and only when a person watches it there."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(
    label: str, total: int | None, *, unit: str = "rows"
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``. On a terminal, a rich progress bar on stderr with the count, the
    rate and (with a total) the time left; otherwise nothing is drawn."""
    if not progress_enabled():
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s")

    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn(label)]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn()]
    else:
        columns += [TextColumn("{task.completed:,}"), Rate()]
    console = Console(stderr=True, no_color="NO_COLOR" in os.environ)
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while a long single step runs (a terminal only)."""
    if not progress_enabled():
        yield
        return
    from rich.console import Console

    with Console(stderr=True, no_color="NO_COLOR" in os.environ).status(message):
        yield
