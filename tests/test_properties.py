"""Property tests: `token decode` and `token verify` never crash on arbitrary input (exit 0, 2
or 3, never a traceback or an internal error), and the core parser only raises MalformedToken."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtctl.errors import MalformedToken
from jwtctl.tokens import parse
from tests.helpers import jwtctl

JSON = st.recursive(
    # standard JSON only: json.dumps writes Infinity, which is not JSON (and jwtctl refuses it)
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
RUN = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_clean(run_stderr: str) -> None:
    assert "Traceback" not in run_stderr
    assert "internal error" not in run_stderr


@given(st.binary(max_size=300))
@RUN
def test_core_parser_only_raises_malformed(data: bytes) -> None:
    text = data.decode("latin-1")
    with contextlib.suppress(MalformedToken):
        parse(text)


@given(st.binary(max_size=300))
@RUN
def test_decode_and_verify_survive_arbitrary_bytes(data: bytes) -> None:
    for command in ("decode", "verify"):
        run = jwtctl(
            "token", command, "-", "--offline" if command == "verify" else "--json", input=data
        )
        assert run.exit_code in (0, 2, 3) if command == "decode" else run.exit_code in (2, 3), (
            run.stderr
        )
        assert_clean(run.stderr)


@given(st.text(max_size=200))
@RUN
def test_decode_survives_arbitrary_arguments(text: str) -> None:
    if text.startswith("-") or "\x00" in text:
        text = "x" + text.replace("\x00", "")
    run = jwtctl("token", "decode", text)
    assert run.exit_code in (0, 2, 3)
    assert_clean(run.stderr)


@given(JSON, JSON, st.binary(max_size=64))
@RUN
def test_arbitrary_json_tokens_decode_or_fail_cleanly_and_never_verify(
    header: object, payload: object, sig: bytes
) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(sig)}"
    decoded = jwtctl("token", "decode", token, "--json")
    if isinstance(header, dict) and isinstance(payload, dict):
        assert decoded.exit_code == 0, decoded.stderr
        assert decoded.json()["verified"] is False
    else:
        assert decoded.exit_code == 3
    assert_clean(decoded.stderr)
    verified = jwtctl("token", "verify", token, "--offline")
    assert verified.exit_code == 3, verified.stderr
    assert_clean(verified.stderr)


@pytest.mark.parametrize("size", [65537, 1 << 20])
def test_oversized_input_on_stdin_is_refused(size: int) -> None:
    run = jwtctl("token", "decode", "-", input="a" * size)
    assert run.exit_code == 3
    assert "limit is 65536" in run.stderr
