"""Configuration: precedence, the Express design's fallback names, the TOML file, and errors
that name where a bad value came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jwtctl.config import resolve
from jwtctl.errors import ConfigError
from tests.helpers import jwtctl


def test_defaults_under_home(tmp_path: Path) -> None:
    s = resolve(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert s.home == tmp_path / ".local/share/jwtctl"
    assert s.db == f"sqlite:///{str(s.home / 'jwtctl.db').lstrip('/')}"
    assert s.keys == s.home / "keys.json"
    assert (s.access_ttl, s.refresh_ttl, s.session_max_age, s.refresh_grace) == (
        900,
        604800,
        2592000,
        10,
    )
    assert (s.issuer, s.audience, s.alg, s.bcrypt_rounds) == ("jwtctl", "jwtctl", "HS256", 12)
    assert (s.login_max_failures, s.leeway, s.max_body) == (10, 0, 65536)
    assert s.access_secret is None and s.refresh_secret is None
    assert s.source("access_ttl") == "default"


def test_xdg_data_home(tmp_path: Path) -> None:
    s = resolve(env={"XDG_DATA_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
    assert s.home == tmp_path / "xdg" / "jwtctl"


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "jwtctl.toml").write_text(
        'access_ttl = "1h"\nrefresh_ttl = "2d"\nissuer = "file"\n'
    )
    env = {"JWTCTL_ACCESS_TTL": "30m", "JWTCTL_REFRESH_TTL": "3d", "HOME": str(tmp_path)}
    s = resolve({"access_ttl": "5m"}, env=env, cwd=tmp_path)
    assert s.access_ttl == 300 and s.source("access_ttl") == "flag --access-ttl"
    assert (
        s.refresh_ttl == 3 * 86400 and s.source("refresh_ttl") == "environment JWTCTL_REFRESH_TTL"
    )
    assert (
        s.issuer == "file" and s.source("issuer") == f"file {tmp_path / 'jwtctl.toml'} key issuer"
    )
    assert s.audience == "jwtctl" and s.source("audience") == "default"


def test_express_fallback_names(tmp_path: Path) -> None:
    env = {
        "ACCESS_TOKEN_SECRET": "a" * 40,
        "REFRESH_TOKEN_SECRET": "r" * 40,
        "ACCESS_TOKEN_EXPIRY": "1d",
        "REFRESH_TOKEN_EXPIRY": "10d",
        "MONGODB_URI": "mongodb://db.example:27017",
        "HOME": str(tmp_path),
    }
    s = resolve(env=env, cwd=tmp_path)
    assert (
        s.access_secret == b"a" * 40
        and s.source("access_secret") == "environment ACCESS_TOKEN_SECRET"
    )
    assert s.refresh_secret == b"r" * 40
    assert (s.access_ttl, s.refresh_ttl) == (86400, 864000)
    assert s.db == "mongodb://db.example:27017" and s.source("db") == "environment MONGODB_URI"
    # the JWTCTL_ names win over the fallbacks
    s2 = resolve(env={**env, "JWTCTL_ACCESS_TTL": "5m", "JWTCTL_DB": "memory:"}, cwd=tmp_path)
    assert (s2.access_ttl, s2.db) == (300, "memory:")


def test_secrets_are_raw_utf8_bytes(tmp_path: Path) -> None:
    s = resolve(
        env={"JWTCTL_ACCESS_SECRET": "clé-" + "x" * 30, "HOME": str(tmp_path)}, cwd=tmp_path
    )
    assert s.access_secret == ("clé-" + "x" * 30).encode()


def test_config_file_locations(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('issuer = "home"\n')
    env = {"JWTCTL_HOME": str(home)}
    assert resolve(env=env, cwd=tmp_path).issuer == "home"
    (tmp_path / "jwtctl.toml").write_text('issuer = "cwd"\n')
    assert resolve(env=env, cwd=tmp_path).issuer == "cwd"
    other = tmp_path / "other.toml"
    other.write_text('issuer = "explicit"\n')
    assert resolve(env={**env, "JWTCTL_CONFIG": str(other)}, cwd=tmp_path).issuer == "explicit"
    assert resolve({"config": str(other)}, env=env, cwd=tmp_path).config_file == other


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "jwtctl.toml"
    conf.parent.mkdir()
    conf.write_text('db = "sqlite:data/auth.db"\nkeys = "keys.json"\n')
    s = resolve({"config": str(conf)}, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert s.db == "sqlite:///" + str(tmp_path / "etc/data/auth.db").lstrip("/")
    assert s.keys == tmp_path / "etc" / "keys.json"


@pytest.mark.parametrize(
    ("env", "source", "problem"),
    [
        ({"JWTCTL_ACCESS_TTL": "15x"}, "environment JWTCTL_ACCESS_TTL", "unknown unit"),
        ({"ACCESS_TOKEN_EXPIRY": "soon"}, "environment ACCESS_TOKEN_EXPIRY", "not a duration"),
        ({"JWTCTL_BCRYPT_ROUNDS": "3"}, "environment JWTCTL_BCRYPT_ROUNDS", "out of range"),
        (
            {"JWTCTL_BCRYPT_ROUNDS": "twelve"},
            "environment JWTCTL_BCRYPT_ROUNDS",
            "not a whole number",
        ),
        ({"JWTCTL_ALG": "none"}, "environment JWTCTL_ALG", "not one of"),
        ({"JWTCTL_DB": "postgres://x"}, "environment JWTCTL_DB", "not a store URL"),
        ({"JWTCTL_DB": "mongodb:///"}, "environment JWTCTL_DB", "names no host"),
        ({"JWTCTL_MAX_BODY": "12"}, "environment JWTCTL_MAX_BODY", "at least 1KiB"),
        ({"JWTCTL_ACCESS_TTL": "0"}, "environment JWTCTL_ACCESS_TTL", "longer than 0s"),
        ({"JWTCTL_LOGIN_MAX_FAILURES": "0"}, "environment JWTCTL_LOGIN_MAX_FAILURES", "at least 1"),
    ],
)
def test_malformed_values_name_source_and_problem(
    tmp_path: Path, env: dict[str, str], source: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(env={**env, "HOME": str(tmp_path)}, cwd=tmp_path)
    assert info.value.source == source
    assert problem in info.value.problem


def test_file_errors_name_file_and_key(tmp_path: Path) -> None:
    conf = tmp_path / "jwtctl.toml"
    conf.write_text("bcrypt_rounds = 99\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"file {conf} key bcrypt_rounds: bad value 99")
    ):
        resolve(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    conf.write_text('acess_ttl = "5m"\n')
    with pytest.raises(ConfigError, match="unknown setting; did you mean 'access_ttl'"):
        resolve(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    conf.write_text("access_ttl = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(env={"HOME": str(tmp_path)}, cwd=tmp_path)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"environment JWTCTL_CONFIG: config file .* does not exist"
    ):
        resolve(env={"JWTCTL_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


def test_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    conf = tmp_path / "jwtctl.toml"
    conf.write_text("access_secret = 12345\n")
    with pytest.raises(ConfigError) as info:
        resolve(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert "12345" not in str(info.value)


# --- through the CLI: exit 7 and one line naming the source ---------------------------------------


def test_cli_exits_7_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTCTL_REFRESH_TTL", "a week")
    run = jwtctl("user", "list")
    assert run.exit_code == 7
    assert run.stderr.startswith(
        "jwtctl: error: environment JWTCTL_REFRESH_TTL: bad value 'a week'"
    )
    assert run.stderr.count("\n") == 1


def test_cli_exits_7_naming_the_flag() -> None:
    run = jwtctl("--db", "redis://x", "user", "list")
    assert run.exit_code == 7
    assert "flag --db" in run.stderr and "not a store URL" in run.stderr


def test_config_show_masks_secrets_and_names_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + "x" * 30
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", secret)
    monkeypatch.setenv("JWTCTL_DB", "mongodb://admin:hunter2@db.example/auth")
    run = jwtctl("config", "show")
    assert run.exit_code == 0
    assert secret not in run.stdout and "hunter2" not in run.stdout
    assert "environment ACCESS_TOKEN_SECRET" in run.stdout
    doc = jwtctl("config", "show", "--json").json()
    assert doc["settings"]["access_secret"]["source"] == "environment ACCESS_TOKEN_SECRET"
    assert doc["settings"]["db"]["value"] == "mongodb://admin:****@db.example/auth"
    assert doc["settings"]["access_ttl"] == {
        "value": "15m",
        "source": "default",
        "variable": "JWTCTL_ACCESS_TTL",
    }
    revealed = jwtctl("config", "show", "--json", "--reveal").json()
    assert revealed["settings"]["access_secret"]["value"] == secret
