"""People and their roles: console passwords (scrypt) and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from bot import audit
from bot.errors import GovbotError, NotFound, PermissionDenied
from bot.models import ROLES, User

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_hex, digest_hex = stored.split("$", 2)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_roles(roles: list[str] | set[str] | tuple[str, ...]) -> str:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise GovbotError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if not roles:
        raise GovbotError("a user needs at least one role")
    return ",".join(sorted(set(roles)))


def get_user(*, session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def issue_api_token(*, session: Session, user: User) -> str:
    """A new API token for the user (shown once; only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    session.add(user)
    return token


def user_for_token(*, session: Session, token: str) -> User | None:
    if not token:
        return None
    user = session.exec(select(User).where(User.api_token_hash == hash_token(token))).first()
    return user if user is not None and user.active else None


def authenticate(*, session: Session, username: str, password: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or not user.active or not verify_password(password, user.password_hash):
        raise PermissionDenied("wrong user name or password")
    return user


def require_role(user: User, *roles: str) -> None:
    if user.has_role("admin") or any(user.has_role(r) for r in roles):
        return
    raise PermissionDenied(f"{user.username} needs the role {' or '.join(roles)}")


# -- administration (用户管理) --------------------------------------------------------------------

MIN_PASSWORD_LENGTH = 8


def set_password(*, session: Session, user: User, password: str) -> None:
    """Set a user's console password (the user's own change, or an admin's reset)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GovbotError(f"密码至少 {MIN_PASSWORD_LENGTH} 位")
    user.password_hash = hash_password(password)
    session.add(user)


def create_user(*, session: Session, actor: User, username: str, display_name: str, roles: list[str],
                department_id: int | None, email: str = "", lead: bool = False, password: str = "") -> User:
    """An admin adds a user who can then log in with the password given."""
    require_role(actor, "admin")
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").isalnum():
        raise GovbotError("用户名须为 1 到 64 位字母、数字、下划线或点")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise GovbotError(f"用户名“{username}”已被使用")
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
        raise NotFound(f"no user #{user_id}")
    if user.id == actor.id and (not active or "admin" not in roles):
        raise GovbotError("不能停用自己的账号或去掉自己的管理员角色")
    user.display_name = display_name.strip() or user.username
    user.roles = check_roles(roles)
    user.department_id, user.email, user.department_lead, user.active = department_id, email.strip() or None, lead, active
    session.add(user)
    audit.record(session=session, actor=actor.username, action="user.updated", subject_type="user",
                 subject_id=user.id, roles=user.roles, department_id=department_id, active=active)
    return user
