"""Bring organisations, departments, accounts and users from the config into the database.

The config is the source of truth for who and what exists; running this again is harmless. Passwords
are only set for users that have none yet, so a password changed in the console is kept.
"""

from __future__ import annotations

from loguru import logger
from sqlmodel import Session, select

from bot.config import Config
from bot.models import Account, Department, Organisation, User
from bot.users import check_roles, hash_password


def _by_name(session: Session, model, name_attr: str, name: str):
    return session.exec(select(model).where(getattr(model, name_attr) == name)).first()


def sync_from_config(*, session: Session, config: Config) -> None:
    orgs: dict[str, Organisation] = {}
    for oc in config.organisations:
        org = _by_name(session, Organisation, "name", oc.name) or Organisation(name=oc.name)
        session.add(org)
        orgs[oc.name] = org
    session.flush()

    dept_names = [d.name for d in config.departments]
    for extra in [*config.triage.topic_departments.values(), config.triage.default_department]:
        if extra not in dept_names:
            dept_names.append(extra)
    depts: dict[str, Department] = {}
    dept_cfg = {d.name: d for d in config.departments}
    for name in dept_names:
        dept = _by_name(session, Department, "name", name) or Department(name=name)
        dc = dept_cfg.get(name)
        if dc is not None:
            dept.organisation_id = orgs[dc.organisation].id if dc.organisation else None
            dept.email = dc.email or None
        session.add(dept)
        depts[name] = dept
    session.flush()

    leads = {d.lead for d in config.departments if d.lead}
    for uc in config.users:
        user = _by_name(session, User, "username", uc.username) or User(username=uc.username)
        user.display_name = uc.display_name or uc.username
        user.roles = check_roles(uc.roles)
        user.department_id = depts[uc.department].id if uc.department else None
        user.department_lead = uc.username in leads
        user.email = uc.email or None
        if uc.password and not user.password_hash:
            user.password_hash = hash_password(uc.password)
        session.add(user)

    for ac in config.accounts:
        acc = _by_name(session, Account, "name", ac.name) or Account(name=ac.name, platform=ac.platform)
        if acc.platform != ac.platform:
            logger.warning("account {} changed platform {} -> {}", ac.name, acc.platform, ac.platform)
        acc.platform = ac.platform
        acc.department_id = depts[ac.department].id if ac.department else None
        acc.enabled = ac.enabled
        acc.auto_reply = ac.auto_reply
        if ac.platform == "wechat":
            acc.remote_id = ac.appid
            acc.credentials = {
                "appid": ac.appid,
                "secret": ac.secret,
                "token": ac.token,
                "encoding_aes_key": ac.encoding_aes_key,
                "message_mode": ac.message_mode,
            }
        else:
            acc.remote_id = ac.uid
            acc.credentials = {"uid": ac.uid, "access_token": ac.access_token}
        session.add(acc)
    session.flush()
