"""Durations, sizes and human times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwtctl.timeutil import format_duration, iso, parse_duration, parse_iso, parse_size, relative


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("900", 900),
        ("1h30m", 5400), ("1.5h", 5400), ("2 days", 172800), ("10 hours", 36000), (" 15M ", 900),
        ("0s", 0), ("0", 0),
    ],
)  # fmt: skip
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "15x", "m", "-5s", "1.2s", "15 minutes ago", "5s5"])
def test_bad_durations_say_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|unit|whole"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_print_and_parse_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**9))
def test_format_is_canonical(seconds: int) -> None:
    text = format_duration(seconds)
    assert format_duration(parse_duration(text)) == text


def test_format_examples() -> None:
    assert [format_duration(n) for n in (0, 59, 90, 900, 86400 * 30, 93784)] == [
        "0s", "59s", "1m30s", "15m", "30d", "1d2h3m4s",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "size"), [("65536", 65536), ("64KiB", 65536), ("64kb", 64000), ("1MiB", 1 << 20)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_iso_and_relative() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(1.5) == "1970-01-01T00:00:01.500Z"
    assert parse_iso(iso(1_800_000_000.123)) == pytest.approx(1_800_000_000.123)
    now = 1_800_000_000.0
    assert relative(now + 14 * 60 + 5, now) == "in 14 min"
    assert relative(now - 3 * 86400, now) == "3 d ago"
    assert relative(now, now) == "now"
    assert relative(now - 30, now) == "30 s ago"
