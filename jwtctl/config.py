"""Configuration, resolved once: command-line flag > environment variable > config file > default.

Every value remembers where it came from (``Settings.sources``) so that an error, or
``jwtctl config show``, can name it: ``flag --db``, ``environment ACCESS_TOKEN_SECRET``,
``file /home/a/jwtctl.toml key access_ttl``, ``default``.

The environment names of the Express design (``ACCESS_TOKEN_SECRET``, ``ACCESS_TOKEN_EXPIRY``,
``REFRESH_TOKEN_SECRET``, ``REFRESH_TOKEN_EXPIRY``, ``MONGODB_URI``) are read as fallbacks when the
``JWTCTL_`` name is unset. An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .timeutil import format_duration, parse_duration, parse_size

ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Settings:
    home: Path
    db: str
    db_name: str
    access_secret: bytes | None
    refresh_secret: bytes | None
    access_ttl: int
    refresh_ttl: int
    session_max_age: int
    refresh_grace: int
    issuer: str
    audience: str
    alg: str
    keys: Path
    bcrypt_rounds: int
    login_max_failures: int
    leeway: int
    max_body: int
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def describe(self, *, reveal: bool = False) -> list[tuple[str, str, str, str]]:
        """(setting, variable, value for display, source) for every setting, secrets masked."""
        rows = []
        for spec in _FIELDS:
            value = getattr(self, spec.name)
            rows.append(
                (spec.name, spec.env[0], _display(spec, value, reveal), self.source(spec.name))
            )
        return rows


def _display(spec: _Field, value: object, reveal: bool) -> str:
    if value is None:
        return "(not set: generated keyring)" if spec.secret else "(not set)"
    if spec.secret and isinstance(value, bytes):
        if reveal:
            return value.decode("utf-8", "replace")
        note = "" if len(value) >= MIN_SECRET_BYTES else f", too short: needs {MIN_SECRET_BYTES}"
        return f"******** ({len(value)} bytes{note})"
    if spec.kind == "duration" and isinstance(value, int):
        return format_duration(value)
    if spec.name == "db" and isinstance(value, str) and not reveal:
        return mask_url(value)
    return str(value)


def mask_url(url: str) -> str:
    """Hide the password in ``scheme://user:password@host`` URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    creds, at, hosts = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:****@{hosts}"


# --- parsers: (raw value, where it came from) -> value; raise ValueError with the problem --------


def _duration(raw: object, *, allow_zero: bool) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a duration such as 15m, not a boolean")
    if isinstance(raw, int):
        seconds = raw
    elif isinstance(raw, str):
        seconds = parse_duration(raw)
    else:
        raise ValueError(f"expected a duration such as 15m, got {type(raw).__name__}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"must be {'at least 0s' if allow_zero else 'longer than 0s'}")
    return seconds


def _int_in(lo: int, hi: int | None) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError("expected a whole number")
        try:
            n = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if n < lo or (hi is not None and n > hi):
            raise ValueError(
                f"{n} is out of range ({lo} to {hi})" if hi else f"must be at least {lo}"
            )
        return n

    return parse


def _text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("expected a non-empty string")
    return raw.strip()


def _secret(raw: object) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise ValueError("expected a non-empty string")
    return raw.encode("utf-8")


def _alg(raw: object) -> str:
    text = _text(raw)
    for alg in ALGORITHMS:
        if alg.lower() == text.lower():
            return alg
    raise ValueError(f"{text!r} is not one of {', '.join(ALGORITHMS)}")


def _size(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a size such as 64KiB")
    n = raw if isinstance(raw, int) else parse_size(str(raw))
    if n < 1024:
        raise ValueError("must be at least 1KiB")
    return n


@dataclass(frozen=True)
class _Field:
    name: str
    env: tuple[str, ...]
    kind: str
    parse: Callable[[object], Any]
    secret: bool = False


def _positive_duration(raw: object) -> int:
    return _duration(raw, allow_zero=False)


def _duration_or_zero(raw: object) -> int:
    return _duration(raw, allow_zero=True)


_FIELDS: tuple[_Field, ...] = (
    _Field("home", ("JWTCTL_HOME",), "path", _text),
    _Field("db", ("JWTCTL_DB", "MONGODB_URI"), "db", _text),
    _Field("db_name", ("JWTCTL_DB_NAME",), "text", _text),
    _Field("access_secret", ("JWTCTL_ACCESS_SECRET", "ACCESS_TOKEN_SECRET"), "secret", _secret,
           secret=True),
    _Field("refresh_secret", ("JWTCTL_REFRESH_SECRET", "REFRESH_TOKEN_SECRET"), "secret", _secret,
           secret=True),
    _Field("access_ttl", ("JWTCTL_ACCESS_TTL", "ACCESS_TOKEN_EXPIRY"), "duration",
           _positive_duration),
    _Field("refresh_ttl", ("JWTCTL_REFRESH_TTL", "REFRESH_TOKEN_EXPIRY"), "duration",
           _positive_duration),
    _Field("session_max_age", ("JWTCTL_SESSION_MAX_AGE",), "duration", _positive_duration),
    _Field("refresh_grace", ("JWTCTL_REFRESH_GRACE",), "duration", _duration_or_zero),
    _Field("issuer", ("JWTCTL_ISSUER",), "text", _text),
    _Field("audience", ("JWTCTL_AUDIENCE",), "text", _text),
    _Field("alg", ("JWTCTL_ALG",), "text", _alg),
    _Field("keys", ("JWTCTL_KEYS",), "path", _text),
    _Field("bcrypt_rounds", ("JWTCTL_BCRYPT_ROUNDS",), "int", _int_in(4, 31)),
    _Field("login_max_failures", ("JWTCTL_LOGIN_MAX_FAILURES",), "int", _int_in(1, None)),
    _Field("leeway", ("JWTCTL_LEEWAY",), "duration", _duration_or_zero),
    _Field("max_body", ("JWTCTL_MAX_BODY",), "size", _size),
)  # fmt: skip
FIELD_NAMES = tuple(f.name for f in _FIELDS)

_DEFAULTS: dict[str, object] = {
    "db_name": "jwtctl",
    "access_secret": None,
    "refresh_secret": None,
    "access_ttl": 15 * 60,
    "refresh_ttl": 7 * 86400,
    "session_max_age": 30 * 86400,
    "refresh_grace": 10,
    "issuer": "jwtctl",
    "audience": "jwtctl",
    "alg": "HS256",
    "bcrypt_rounds": 12,
    "login_max_failures": 10,
    "leeway": 0,
    "max_body": 64 * 1024,
}


def variables() -> list[tuple[str, tuple[str, ...], str]]:
    """(setting, environment names, kind) for documentation and tests."""
    return [(f.name, f.env, f.kind) for f in _FIELDS]


def default_home(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base / "jwtctl"


def resolve(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every setting once. ``flags`` maps setting names to values given on the command
    line (``None`` means not given). Raises ConfigError naming the source of a bad value."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = set(given) - set(FIELD_NAMES) - {"config"}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")

    # Where raw values come from, per field: (raw, source, base directory for relative paths).
    raw: dict[str, tuple[object, str, Path]] = {}

    def env_value(name: str) -> tuple[str, str] | None:
        for var in next(f for f in _FIELDS if f.name == name).env:
            value = env.get(var)
            if value:
                return value, var
        return None

    # The config file is found with home as known before reading it (flag, env, default).
    home_hint = given.get("home") or env.get("JWTCTL_HOME") or str(default_home(env))
    config_file = _find_config_file(given.get("config"), env, cwd, Path(str(home_hint)))
    file_values = _read_config_file(config_file) if config_file else {}

    for spec in _FIELDS:
        flag_name = "--" + spec.name.replace("_", "-")
        if spec.name in given:
            raw[spec.name] = (given[spec.name], f"flag {flag_name}", cwd)
        elif (found := env_value(spec.name)) is not None:
            raw[spec.name] = (found[0], f"environment {found[1]}", cwd)
        elif spec.name in file_values:
            assert config_file is not None
            raw[spec.name] = (file_values[spec.name], f"file {config_file} key {spec.name}",
                              config_file.parent)  # fmt: skip

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in _FIELDS:
        if spec.name not in raw:
            continue
        value, source, base = raw[spec.name]
        try:
            parsed = spec.parse(value)
            if spec.name in {"home", "keys"}:
                parsed = _abs(Path(os.path.expanduser(parsed)), base)
            elif spec.name == "db":
                parsed = _normalise_db_url(parsed, base)
        except ValueError as exc:
            shown = "" if spec.secret else f" {value!r}"
            raise ConfigError(source, f"bad value{shown}: {exc}") from None
        values[spec.name] = parsed
        sources[spec.name] = source

    home: Path = values.get("home") or _abs(default_home(env), cwd)
    values["home"] = home
    values.setdefault("db", sqlite_url(home / "jwtctl.db"))
    values.setdefault("keys", home / "keys.json")
    for name, default in _DEFAULTS.items():
        values.setdefault(name, default)
    return Settings(**values, config_file=config_file, sources=sources)


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= 3600 else None


def sqlite_url(path: Path) -> str:
    """The canonical URL of an absolute SQLite path: ``sqlite:///`` + the path."""
    return "sqlite:///" + str(path).lstrip("/")


def _abs(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _normalise_db_url(url: str, base: Path) -> str:
    """Validate a store URL and make SQLite paths absolute: ``sqlite:///ABS``, ``sqlite:REL``,
    ``mongodb://…``, ``mongodb+srv://…``, ``memory:``."""
    if url in ("memory:", "memory://"):
        return "memory:"
    if url.startswith(("mongodb://", "mongodb+srv://")):
        hosts = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
        if not hosts.strip(","):
            raise ValueError("the MongoDB URL names no host")
        return url
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        path_part, _, query = rest.partition("?")
        for option in filter(None, query.split("&")):
            name, _, value = option.partition("=")
            if (name, value) in (("mode", "ro"), ("mode", "rw")):
                continue
            if name == "timeout" and _seconds(value) is not None:
                continue
            raise ValueError(f"unsupported SQLite option {option!r} (mode=ro, timeout=SECONDS)")
        if path_part.startswith("//"):
            path_part = "/" + path_part.lstrip("/")
        if not path_part:
            raise ValueError(
                "sqlite: needs a path, e.g. sqlite:///var/lib/jwtctl.db or sqlite:jwtctl.db"
            )
        path = _abs(Path(os.path.expanduser(path_part)), base)
        return sqlite_url(path) + (f"?{query}" if query else "")
    raise ValueError(
        "not a store URL (use sqlite:///ABS/PATH, sqlite:REL/PATH, mongodb://…, memory:)"
    )


def _find_config_file(
    flag: object | None, env: Mapping[str, str], cwd: Path, home: Path
) -> Path | None:
    explicit = (str(flag), "flag --config") if flag else None
    if explicit is None and env.get("JWTCTL_CONFIG"):
        explicit = (env["JWTCTL_CONFIG"], "environment JWTCTL_CONFIG")
    if explicit is not None:
        path = _abs(Path(os.path.expanduser(explicit[0])), cwd)
        if not path.is_file():
            raise ConfigError(explicit[1], f"config file {path} does not exist")
        return path
    for candidate in (cwd / "jwtctl.toml", home / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def _read_config_file(path: Path) -> dict[str, object]:
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"file {path}", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"file {path}", f"not valid TOML: {exc}") from None
    for key in data:
        if key not in FIELD_NAMES:
            import difflib

            close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"file {path} key {key}", f"unknown setting{hint}")
    return dict(data)


def default_settings(**overrides: Any) -> Settings:
    """Settings with defaults only (no environment, no file) under ``home``; for tests and
    library users that configure in code."""
    home = Path(overrides.pop("home", default_home(os.environ)))
    values: dict[str, Any] = dict(_DEFAULTS)
    values.update(home=home, db=sqlite_url(home / "jwtctl.db"), keys=home / "keys.json")
    values.update(overrides)
    return Settings(**values)
