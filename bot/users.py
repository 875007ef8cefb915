"""People and their roles: console passwords (argon2id), the password policy, log-in with throttling,
and API tokens."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, delete, select

from bot import audit, login_throttle
from bot.clock import utcnow
from bot.errors import GovbotError, NotFound, PermissionDenied
from bot.labels import label
from bot.models import ROLES, User, WebSession

# argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane); the parameters travel in each hash, so
# raising them here rehashes every password at its next log-in.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# The home-made format of earlier versions, still verified so that its users can log in (and are rehashed).
_LEGACY_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

MIN_PASSWORD_LENGTH = 10
# Passwords every guessing list starts with (the top of public leak lists, Chinese ones included).
COMMON_PASSWORDS = frozenset("""
123456 123456789 12345678 1234567890 0123456789 9876543210 password password1 password123 passw0rd p@ssw0rd
qwerty qwertyuiop qwerty123 1q2w3e4r5t 1qaz2wsx3edc 1qaz2wsx zxcvbnm123 asdfghjkl 1234qwer 1234qwerasdf
qwer1234asdf 111111 1111111111 0000000000 000000 888888 88888888 666666 5201314 woaini1314 iloveyou
iloveyou1314 woaiwojia abc123 abc123456 abcd123456 a123456 a1234567890 aa123456789 qq123456 admin admin123
admin12345 administrator welcome welcome123 letmein changeme changeme123 12345678910 123123123 123qweasd
qweasdzxc 147258369 123321123 sunshine princess dragon monkey football baseball superman trustno1
""".split())


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def _verify_legacy_scrypt(password: str, stored: str) -> bool:
    _, salt_hex, digest_hex = stored.split("$", 2)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_LEGACY_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


@cache
def _dummy_hash() -> str:
    return HASHER.hash("not a password anyone has")


def verify_password(password: str, stored: str | None) -> bool:
    """Does the password match the stored hash? A missing hash costs the same time as a wrong password."""
    if stored and stored.startswith("scrypt$"):
        return _verify_legacy_scrypt(password, stored)
    try:
        HASHER.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    """Is the hash of an older format or weaker parameters than HASHER's (rehashed at the next log-in)?"""
    return stored.startswith("scrypt$") or HASHER.check_needs_rehash(stored)


def check_password(password: str, username: str) -> None:
    """Refuse a password the policy does not allow, saying why. Pure."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GovbotError("password.too_short", min_length=MIN_PASSWORD_LENGTH)
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise GovbotError("password.has_username")
    if lowered in COMMON_PASSWORDS or len(set(password)) <= 2:
        raise GovbotError("password.too_common")


def set_password(*, session: Session, user: User, password: str) -> None:
    """The one way a person's password is set: checked against the policy, hashed, and every console
    session of the user ended (whoever knew the old password is logged out)."""
    check_password(password, user.username)
    user.password_hash = hash_password(password)
    session.add(user)
    end_sessions(session=session, user=user)


def end_sessions(*, session: Session, user: User) -> int:
    """End every console session of the user (logout everywhere); the number ended."""
    if user.id is None:  # not stored yet: no sessions
        return 0
    result = session.exec(delete(WebSession).where(WebSession.user_id == user.id))
    return result.rowcount or 0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_roles(roles: list[str] | set[str] | tuple[str, ...]) -> str:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise GovbotError("user.unknown_roles", roles=", ".join(unknown), known=", ".join(ROLES))
    if not roles:
        raise GovbotError("user.no_roles")
    return ",".join(sorted(set(roles)))


def get_user(*, session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound("user.not_found", username=username)
    return user


def issue_api_token(*, session: Session, user: User) -> str:
    """A new API token for the user (shown once; only its hash is kept)."""
    import secrets

    token = secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    session.add(user)
    return token


def user_for_token(*, session: Session, token: str) -> User | None:
    if not token:
        return None
    user = session.exec(select(User).where(User.api_token_hash == hash_token(token))).first()
    return user if user is not None and user.active else None


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    locked_until: datetime | None = None


def authenticate(*, session: Session, username: str, password: str, address: str,
                 limits: login_throttle.Limits) -> LoginResult:
    """Check a log-in. Never raises for a wrong password: the failure is recorded in this session's
    transaction, which the caller commits. Unknown names cost the same time as known ones."""
    now = utcnow()
    until = login_throttle.locked_until(session=session, username=username, address=address, now=now)
    if until is not None:
        return LoginResult(None, until)
    user = session.exec(select(User).where(User.username == username)).first()
    ok = verify_password(password, user.password_hash if user is not None else None)
    if not ok or user is None or not user.active:
        login_throttle.record_failure(session=session, username=username, address=address, limits=limits, now=now)
        return LoginResult(None)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
    login_throttle.record_success(session=session, username=username)
    return LoginResult(user)


def require_role(user: User, *roles: str) -> None:
    if user.has_role("admin") or any(user.has_role(r) for r in roles):
        return
    raise PermissionDenied("user.needs_role", user=user.username, roles=" or ".join(roles),
                           roles_zh="或".join(label(r, "role") for r in roles))


# -- administration (用户管理) --------------------------------------------------------------------

def create_user(*, session: Session, actor: User, username: str, display_name: str, roles: list[str],
                department_id: int | None, email: str = "", lead: bool = False, password: str = "") -> User:
    """An admin adds a user who can then log in with the password given."""
    require_role(actor, "admin")
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").isalnum():
        raise GovbotError("user.name_invalid")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise GovbotError("user.name_taken", username=username)
    user = User(username=username, display_name=display_name.strip() or username, roles=check_roles(roles),
                department_id=department_id, email=email.strip() or None, department_lead=lead)
    set_password(session=session, user=user, password=password)
    session.add(user)
    session.flush()
    audit.record(session=session, actor=actor.username, action="user.created", subject_type="user",
                 subject_id=user.id, roles=user.roles, department_id=department_id)
    return user


def update_user(*, session: Session, actor: User, user_id: int, display_name: str, roles: list[str],
                department_id: int | None, email: str, lead: bool, active: bool) -> User:
    require_role(actor, "admin")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user.id_not_found", user_id=user_id)
    if user.id == actor.id and (not active or "admin" not in roles):
        raise GovbotError("user.not_self")
    user.display_name = display_name.strip() or user.username
    user.roles = check_roles(roles)
    user.department_id, user.email, user.department_lead, user.active = department_id, email.strip() or None, lead, active
    session.add(user)
    audit.record(session=session, actor=actor.username, action="user.updated", subject_type="user",
                 subject_id=user.id, roles=user.roles, department_id=department_id, active=active)
    return user
