"""Login sessions: start, rotate (with the concurrent-retry grace window and reuse detection),
revoke, check, list and prune.

How a retry gets "the same successor" while the store keeps only hashes
------------------------------------------------------------------------
A session stores the SHA-256 of its current refresh ``jti`` (``jti_hash``) and of the one before
(``prev_jti_hash``), plus ``rotated_at``. The successor's ``jti`` is not random: it is
``HMAC(refresh key, "successor" || sid || jti)``, so whoever presents a valid token ``n`` can have
``jti(n+1)`` recomputed, but nobody can compute it without the refresh key. The successor's
``iat`` is ``rotated_at`` and its ``exp`` is the session's ``expires_at``, both stored. HS256 is
deterministic, so a retry within ``JWTCTL_REFRESH_GRACE`` re-signs a byte-identical refresh
token: same ``sid``, same ``jti``, no branch in the chain, nothing secret stored.

Rotation is the store's single compare-and-set; a request that loses the race re-reads the
session and is then, by construction, a retry of the previous token. A replay after the grace
window, or of any older token, revokes the whole session (reason ``reuse``).
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import InvalidClaim, InvalidInput, RefreshReuse, Refused, RevokedToken, SessionNotFound
from .keys import Keyring, b64url
from .models import Session, User, new_id
from .store import ENDED_SESSION_RETENTION, Store
from .timeutil import Clock, ms, system_clock
from .tokens import (
    ACCESS_TYP,
    OWN_REQUIRED,
    REFRESH_TYP,
    RESERVED_CLAIMS,
    Policy,
    Verified,
    jti_hash,
    sign,
    verify,
)


@dataclass(frozen=True)
class Issued:
    """What a login, a refresh or `token issue` hands out. ``refresh_token`` goes in a cookie
    (or is printed by `token issue --with-refresh`), never in an HTTP response body."""

    user: User
    session: Session
    access_token: str
    access_claims: dict[str, Any]
    refresh_token: str
    refresh_claims: dict[str, Any]
    retried: bool = False  # a concurrent retry answered with the existing successor


@dataclass(frozen=True)
class Access:
    """A verified access token, its user and its session, all current."""

    claims: dict[str, Any]
    header: dict[str, Any]
    user: User
    session: Session


def own_policy(settings: Settings, typ: str) -> Policy:
    """What jwtctl requires of its own tokens of this type (``typ`` is the header typ)."""
    return Policy(
        required=OWN_REQUIRED | {"sid", "jti"},
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.leeway,
        typ=typ,
    )


def _new_jti() -> str:
    return b64url(secrets.token_bytes(16))


KeyringSource = Keyring | Callable[[], Keyring]
"""A keyring, or a function that opens it on first need (listing or revoking sessions needs no
keys, so an admin command never creates a keyring as a side effect)."""


class Sessions:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        keyring: KeyringSource,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self._keyring = keyring
        self.clock = clock
        self._policies = {typ: own_policy(settings, typ) for typ in (ACCESS_TYP, REFRESH_TYP)}

    @property
    def keyring(self) -> Keyring:
        if not isinstance(self._keyring, Keyring):
            self._keyring = self._keyring()
        return self._keyring

    # --- policies and token minting ----------------------------------------------------------
    def policy(self, typ: str) -> Policy:
        return self._policies[typ]

    def _access(
        self,
        user: User,
        session: Session,
        now: float,
        *,
        ttl: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        iat = int(now)
        claims: dict[str, Any] = {
            "sub": user.id,
            "_id": user.id,
            "username": user.username,
            "email": user.email,
            "fullName": user.full_name,
            "roles": list(user.roles),
            "sid": session.id,
            "jti": _new_jti(),
            "iat": iat,
            "exp": iat + (self.settings.access_ttl if ttl is None else ttl),
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
        }
        if extra:
            reserved = sorted(set(extra) & set(RESERVED_CLAIMS))
            if reserved:
                raise InvalidInput(
                    "claim", f"{', '.join(reserved)} cannot be set: jwtctl sets them"
                )
            claims.update(extra)
        return sign(claims, self.keyring.active("access"), typ=ACCESS_TYP), claims

    def _refresh(self, session: Session, jti: str) -> tuple[str, dict[str, Any]]:
        claims = {
            "sub": session.user_id,
            "sid": session.id,
            "jti": jti,
            "iat": int(
                session.rotated_at if session.rotated_at is not None else session.created_at
            ),
            "exp": int(session.expires_at),
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
        }
        return sign(claims, self.keyring.active("refresh"), typ=REFRESH_TYP), claims

    @staticmethod
    def _successor(verified: Verified) -> str:
        sid, jti = str(verified.payload["sid"]), str(verified.payload["jti"])
        mac = hmac.new(verified.key.secret, f"successor\x00{sid}\x00{jti}".encode(), "sha256")
        return b64url(mac.digest()[:16])

    def _issue(
        self, user: User, session: Session, refresh_jti: str, now: float, *, retried: bool = False
    ) -> Issued:
        access, access_claims = self._access(user, session, now)
        refresh, refresh_claims = self._refresh(session, refresh_jti)
        return Issued(user, session, access, access_claims, refresh, refresh_claims, retried)

    # --- start -------------------------------------------------------------------------------
    def start(
        self,
        user: User,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        access_ttl: int | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> Issued:
        """A new session for an authenticated, enabled user, and its first pair of tokens."""
        if user.disabled:
            raise Refused(f"user {user.username} is disabled")
        now = ms(self.clock())
        absolute = ms(now + self.settings.session_max_age)
        jti = _new_jti()
        session = Session(
            id=new_id(),
            user_id=user.id,
            jti_hash=jti_hash(jti),
            created_at=now,
            last_used_at=now,
            expires_at=float(math.floor(min(now + self.settings.refresh_ttl, absolute))),
            absolute_expires_at=absolute,
            ip=ip,
            user_agent=user_agent,
        )
        self.store.insert_session(session)
        # A password change or disable that raced this login must win: check the user again
        # now that the session exists, and end the session if they changed under us.
        current = self.store.get_user(user.id)
        if current is None or current.disabled or current.password_hash != user.password_hash:
            self.store.revoke_session(session.id, now=now, reason="user-changed")
            raise Refused(f"user {user.username} changed during login; try again")
        access, access_claims = self._access(
            current, session, now, ttl=access_ttl, extra=extra_claims
        )
        refresh, refresh_claims = self._refresh(session, jti)
        return Issued(current, session, access, access_claims, refresh, refresh_claims)

    # --- refresh (rotation) ------------------------------------------------------------------
    def verify_refresh(self, token: str, policy: Policy | None = None) -> Verified:
        keys = self.keyring.for_verification("refresh")
        return verify(token, keys, policy or self.policy(REFRESH_TYP), now=self.clock())

    def refresh(
        self, token: str, *, ip: str | None = None, user_agent: str | None = None
    ) -> Issued:
        """Rotate: exactly one of many concurrent refreshes with one token rotates; the others,
        within the grace window, get the same successor; any later replay revokes the session."""
        verified = self.verify_refresh(token)
        sid, jti, sub = (
            str(verified.payload["sid"]),
            str(verified.payload["jti"]),
            verified.payload["sub"],
        )
        presented = jti_hash(jti)
        successor = self._successor(verified)
        for _ in range(2):  # second pass only after losing the compare-and-set
            now = ms(self.clock())
            session = self.store.get_session(sid)
            if session is None:
                raise RevokedToken("the session no longer exists")
            if session.user_id != sub:
                raise InvalidClaim("sub", "does not match the session")
            state = session.state(now)
            if state == "revoked":
                raise RevokedToken(f"the session was revoked ({session.revoke_reason})")
            if state == "expired":
                raise RevokedToken("the session has expired")
            user = self.store.get_user(session.user_id)
            if user is None:
                raise RevokedToken("the user no longer exists")
            if user.disabled:
                raise RevokedToken("the user is disabled")
            if presented == session.jti_hash:
                expires = float(
                    math.floor(min(now + self.settings.refresh_ttl, session.absolute_expires_at))
                )
                rotated = self.store.rotate_session(
                    sid,
                    jti_hash=presented,
                    new_jti_hash=jti_hash(successor),
                    now=now,
                    expires_at=expires,
                )
                if rotated is not None:
                    return self._issue(user, rotated, successor, now)
                continue  # another request rotated first: look again, as a retry
            if (
                presented == session.prev_jti_hash
                and session.rotated_at is not None
                and now - session.rotated_at <= self.settings.refresh_grace
                and jti_hash(successor) == session.jti_hash
            ):
                return self._issue(user, session, successor, now, retried=True)
            # Stamp the revocation when it is written, not when this refresh began.
            revoked_at = ms(self.clock())
            self.store.revoke_session(
                sid, now=revoked_at, reason="reuse", ip=ip, user_agent=user_agent
            )
            raise RefreshReuse(sid)
        raise RevokedToken("the session changed during refresh; log in again")

    def check_refresh(self, token: str, policy: Policy | None = None) -> tuple[Verified, Session]:
        """`token verify --type refresh`: valid and current, without rotating it."""
        verified = self.verify_refresh(token, policy)
        now = self.clock()
        session = self._live_session(
            str(verified.payload["sid"]), str(verified.payload["sub"]), now
        )
        if jti_hash(str(verified.payload["jti"])) != session.jti_hash:
            raise RevokedToken("this refresh token has already been rotated (superseded)")
        return verified, session

    # --- access-token check ------------------------------------------------------------------
    def check_access(self, token: str, policy: Policy | None = None) -> Access:
        """The check the server and `token verify` use: signature and claims, then the user
        exists and is enabled, the token was issued after the user's tokensValidAfter, and the
        session is active."""
        now = self.clock()
        verified = verify(
            token,
            self.keyring.for_verification("access"),
            policy or self.policy(ACCESS_TYP),
            now=now,
        )
        claims = verified.payload
        user = self.store.get_user(str(claims["sub"]))
        if user is None:
            raise RevokedToken("the user no longer exists")
        if user.disabled:
            raise RevokedToken("the user is disabled")
        tva = user.tokens_valid_after
        if tva is not None and float(claims["iat"]) < math.floor(tva):
            raise RevokedToken("issued before the user's password change or disable")
        session = self._live_session(str(claims["sid"]), user.id, now)
        return Access(claims, verified.header, user, session)

    def _live_session(self, sid: str, user_id: str, now: float) -> Session:
        session = self.store.get_session(sid)
        if session is None or session.user_id != user_id:
            raise RevokedToken("the session no longer exists")
        state = session.state(now)
        if state == "revoked":
            raise RevokedToken(f"the session was revoked ({session.revoke_reason})")
        if state == "expired":
            raise RevokedToken("the session has expired")
        return session

    # --- revocation and housekeeping ---------------------------------------------------------
    def get(self, session_id: str) -> Session:
        session = self.store.get_session(session_id) if session_id else None
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def logout(self, session_id: str, *, reason: str = "logout") -> bool:
        """End one session. True when this call ended it."""
        return (
            self.store.revoke_session(session_id, now=ms(self.clock()), reason=reason) is not None
        )

    def logout_all(self, user_id: str, *, reason: str = "logout-all") -> list[str]:
        return self.store.revoke_user_sessions(user_id, now=ms(self.clock()), reason=reason)

    def revoke_user(
        self, user_id: str, *, older_than: int | None = None, reason: str = "admin"
    ) -> list[str]:
        now = ms(self.clock())
        before = None if older_than is None else now - older_than
        return self.store.revoke_user_sessions(
            user_id, now=now, reason=reason, created_before=before
        )

    def list(
        self, *, user_id: str | None = None, include_ended: bool = False, limit: int | None = None
    ) -> list[Session]:
        active_at = None if include_ended else self.clock()
        return self.store.list_sessions(user_id=user_id, active_at=active_at, limit=limit)

    def prune(
        self, *, keep_revoked: int = ENDED_SESSION_RETENTION, dry_run: bool = False
    ) -> tuple[int, int]:
        """Remove expired sessions, and revoked ones older than ``keep_revoked`` (kept that
        long for `sessions list --all` and reuse forensics). Returns (expired, revoked)."""
        now = ms(self.clock())
        return self.store.prune_sessions(
            now=now, revoked_before=now - keep_revoked, dry_run=dry_run
        )
