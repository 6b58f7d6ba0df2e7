"""bcrypt password hashing: the configured cost, the 72-byte rule, rehash on a successful check,
and a dummy hash so that checking an unknown user costs the same as a wrong password."""

from __future__ import annotations

import re
import threading

from . import validation

_HASH_RE = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_dummy: dict[int, bytes] = {}
_dummy_lock = threading.Lock()


def hash_password(password: object, rounds: int) -> str:
    """Hash a new password (validated: 8 to 72 UTF-8 bytes, no NUL). Returns a ``$2b$`` hash."""
    import bcrypt  # here, not at the top: commands that never hash should not load it

    data = validation.password_bytes(password, for_new_password=True)
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds)).decode("ascii")


def is_bcrypt_hash(value: str) -> bool:
    return bool(_HASH_RE.fullmatch(value))


def cost_of(hashed: str) -> int | None:
    m = _HASH_RE.fullmatch(hashed)
    return int(m.group(1)) if m else None


def needs_rehash(hashed: str, rounds: int) -> bool:
    return cost_of(hashed) != rounds


def _dummy_hash(rounds: int) -> bytes:
    import bcrypt

    with _dummy_lock:
        if rounds not in _dummy:
            _dummy[rounds] = bcrypt.hashpw(b"jwtctl dummy password", bcrypt.gensalt(rounds))
        return _dummy[rounds]


def check_password(password: object, hashed: str | None, rounds: int) -> bool:
    """True when ``password`` matches ``hashed``. With ``hashed=None`` (unknown user) a dummy hash
    of the configured cost is checked so the answer takes as long as for a real user. Raises
    InvalidInput for a non-string, NUL or over-72-byte password, for known and unknown users alike.
    A stored value that is not a bcrypt hash never matches."""
    import bcrypt

    data = validation.password_bytes(password, for_new_password=False)
    if hashed is None or not is_bcrypt_hash(hashed):
        bcrypt.checkpw(data, _dummy_hash(rounds))
        return False
    try:
        return bcrypt.checkpw(data, hashed.encode("ascii"))
    except ValueError:
        return False
