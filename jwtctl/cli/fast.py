"""Start-up: keep pydantic out of commands that do not need it.

Typer 0.29 coerces every non-boolean parameter through a pydantic ``TypeAdapter``, built lazily
but for every parameter processed, set or not; the first one imports pydantic, which is most of
a Typer CLI's start-up time (measured in bench/startup.py). For a parameter declared as plain
``str``, ``Path`` or ``list[str]``, that coercion is the identity (or ``Path(value)``), so jwtctl
gives such parameters a pass-through coercion before parsing. Parameters of other types (the
ranged ``int`` of ``user list --limit``) keep Typer's own.

This reaches into one private Typer class (``typer._coercion.RuntimeParam``); when it is absent
or shaped differently, nothing is changed and Typer behaves as usual, only slower to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from typer._coercion import RuntimeParam
except ImportError:  # another Typer: keep its own coercion
    RuntimeParam = None  # type: ignore[assignment,misc]

_PLAIN: tuple[Any, ...] = (str, Path, list[str], bool)
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})

if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _Plain(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.annotation is Path:
                return Path(value)
            if self.annotation is str:
                return value if isinstance(value, str) else str(value)
            if self.annotation is bool:
                return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
            return [v if isinstance(v, str) else str(v) for v in value]


def install_plain_coercion(command: Any) -> int:
    """Give every plain str/Path/list[str] parameter of the command tree a pass-through
    coercion. Returns how many parameters were changed (0 when Typer's internals differ)."""
    if RuntimeParam is None:
        return 0
    changed = sum(_plain(param) for param in getattr(command, "params", ()))
    _wrap_help_option(command)
    for sub in getattr(command, "commands", {}).values():
        changed += install_plain_coercion(sub)
    return changed


def _plain(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None:
        return False
    if descriptor.annotation not in _PLAIN:
        return False
    param._runtime_param = _Plain(descriptor.parameter_info, descriptor.annotation)
    return True


def _wrap_help_option(command: Any) -> None:
    """The --help option is made on first use per command; give it the same coercion then."""
    original = getattr(command, "get_help_option", None)
    if original is None or getattr(original, "_jwtctl_plain", False):
        return

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            _plain(option)
        return option

    get_help_option._jwtctl_plain = True  # type: ignore[attr-defined]
    command.get_help_option = get_help_option
