"""People and their roles: console passwords (scrypt) and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from bot.errors import GovbotError, NotFound, PermissionDenied
from bot.labels import label
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
        raise PermissionDenied("user.bad_login")
    return user


def require_role(user: User, *roles: str) -> None:
    if user.has_role("admin") or any(user.has_role(r) for r in roles):
        return
    raise PermissionDenied("user.needs_role", user=user.username, roles=" or ".join(roles),
                           roles_zh="或".join(label(r, "role") for r in roles))
