"""Durations, sizes, timestamps for people, and the clock the core asks for "now".

Durations accept ``30s``, ``15m``, ``2h``, ``7d``, ``1w``, plain seconds, and compounds such as
``1h30m``. The long unit names of the Express design's ``ms`` strings (``"2 days"``, ``"10 hours"``)
are accepted too, so its ``ACCESS_TOKEN_EXPIRY`` values carry over. ``format_duration`` prints the
canonical compound form, and ``parse_duration(format_duration(n)) == n`` for every n >= 0.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Returns the current time as POSIX seconds. The core takes one so tests can step time."""

system_clock: Clock = time.time

_UNITS: dict[str, int] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)")
_CANONICAL = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> int:
    """Parse a duration into whole seconds. Raises ValueError with a reason people can act on."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    if s.isdigit():
        return int(s)
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 15m, 2h, 7d, 1w)")
        number, unit = m.groups()
        if unit not in _UNITS:
            raise ValueError(
                f"unknown unit {unit!r} in {text!r} (use s, m, h, d or w)"
                if unit
                else f"{text!r} needs a unit after {number} (s, m, h, d or w)"
            )
        total += float(number) * _UNITS[unit]
        pos = m.end()
    if total != int(total):
        raise ValueError(f"{text!r} is not a whole number of seconds")
    return int(total)


def format_duration(seconds: int) -> str:
    """Canonical compound form: 90 -> '1m30s', 30 days -> '30d', 0 -> '0s'."""
    if seconds < 0:
        raise ValueError("negative duration")
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _CANONICAL:
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6}
_SIZE_UNITS["mib"] = 1 << 20


def parse_size(text: str) -> int:
    """Parse a byte size: ``65536``, ``64KiB``, ``64kB``, ``1MiB``."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (use e.g. 65536, 64KiB, 1MiB)")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]


@functools.lru_cache(maxsize=4096)
def iso(ts: float) -> str:
    """ISO-8601 UTC with a Z; milliseconds only when the time has them (stored times do)."""
    dt = datetime.fromtimestamp(ts, UTC)
    if dt.microsecond // 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """Inverse of :func:`iso` (accepts any ISO-8601 form with an offset or Z)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def relative(ts: float, now: float) -> str:
    """'in 14 min', '3 d ago', 'now'. Rounded toward the larger unit people think in."""
    delta = ts - now
    span = abs(delta)
    if span < 1:
        return "now"
    for limit, size, name in (
        (120, 1, "s"),
        (120 * 60, 60, "min"),
        (48 * 3600, 3600, "h"),
        (60 * 86400, 86400, "d"),
        (730 * 86400, 30 * 86400, "mo"),
    ):
        if span < limit:
            n, unit = int(span // size), name
            break
    else:
        n, unit = int(span // (365 * 86400)), "y"
    return f"in {n} {unit}" if delta > 0 else f"{n} {unit} ago"


def ms(ts: float) -> float:
    """Truncate to the millisecond precision every store keeps (MongoDB dates are milliseconds).

    Never rounds up: a token's ``iat`` derived from a stored time must not lie in the future.
    The tiny epsilon keeps ``ms`` idempotent through float round-trips (99.999 * 1000 is
    99998.99999999999)."""
    return math.floor(ts * 1000 + 1e-6) / 1000
