"""Who may do what (权限): role × department × action -> allowed, every rule in one table.

Pure logic, no I/O. The web (one dependency keyed by route, bot.web.access), the service functions
(for department-scoped objects: a ticket, a message, a reply template, a post's target accounts) and
the CLI commands acting `--as` a user all ask `allowed` here, so a rule is changed in one place.

A department lead (部门负责人, User.department_lead) counts as the pseudo-role "lead".
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import PermissionDenied
from bot.labels import label
from bot.models import ROLES, User

LEAD_ZH = "部门负责人"
ANYONE = "anyone"  # no login (login form, static files, the WeChat callback)
SIGNED_IN = "signed_in"  # any logged-in user


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]  # roles that may (admin always may); empty with SIGNED_IN: every user
    scoped: bool  # True: non-admins only within their own department
    zh: str  # what it is, as the refusal says


def _rule(roles: str, scoped: bool, zh: str) -> Rule:
    return Rule(frozenset(roles.split()), scoped, zh)


HANDLERS = "responder lead"
SIGNERS = "editor reviewer approver"
NEWSROOM = "editor reviewer approver"

RULES: dict[str, Rule] = {
    ANYONE: _rule("", False, "公开"),
    SIGNED_IN: _rule("", False, "登录"),
    # Posts (稿件) and their publications: the newsroom and its leaders.
    "posts.read": _rule(NEWSROOM, False, "查看稿件"),
    "posts.write": _rule("editor", False, "撰写和修改稿件"),
    "posts.sign": _rule(SIGNERS, False, "审核稿件"),
    # Publishing on an account (排期发布) is for the editors of the account's department.
    "posts.schedule": _rule("editor", True, "安排发布"),
    # Citizen messages (消息): whoever answers them, and editors watching comments, in their department.
    "messages.read": _rule(f"{HANDLERS} editor", True, "查看群众留言"),
    "messages.correct": _rule(HANDLERS, True, "更正分类"),
    # Tickets (工单), their replies and the department's reply templates (答复模板).
    "tickets.read": _rule(HANDLERS, True, "查看工单"),
    "tickets.handle": _rule(HANDLERS, True, "办理工单"),
    "templates.read": _rule(HANDLERS, True, "查看答复模板"),
    "templates.write": _rule(HANDLERS, True, "管理答复模板"),
    # Oversight figures and the account list: every officer.
    "oversight.read": _rule("", False, "查看日报和报表"),
    # 整改: what was done about a problem an inspection found on an account of the department.
    "inspection.rectify": _rule("editor lead", True, "登记整改"),
    "digest.send": _rule("admin", False, "发送日报"),
    "accounts.read": _rule("", False, "查看账号"),
    "rules.test": _rule("", False, "测试分类规则"),
    # Users, sessions and the system (系统管理).
    "admin": _rule("admin", False, "系统管理"),
}


def roles_of(user: User) -> set[str]:
    roles = user.role_set()
    if user.department_lead and user.department_id is not None:
        roles.add("lead")
    return roles


def may_act(user: User | None, action: str) -> bool:
    """May the user do this action at all (in some department)?"""
    rule = RULES[action]
    if action == ANYONE:
        return True
    if user is None or not user.active:
        return False
    roles = roles_of(user)
    if "admin" in roles or not rule.roles:
        return True
    return bool(rule.roles & roles)


def allowed(user: User | None, action: str, department_id: int | None = None) -> bool:
    """May the user do this action on an object of department `department_id`?

    For scoped actions a non-admin acts only within the own department; an object of no department
    (not yet routed) is the admins' alone.
    """
    if not may_act(user, action):
        return False
    rule = RULES[action]
    if not rule.scoped or user is None or user.has_role("admin"):
        return True
    return user.department_id is not None and user.department_id == department_id


def visible_departments(user: User, action: str) -> set[int] | None:
    """The departments whose objects a list may show the user: None = all, empty = none."""
    if not may_act(user, action):
        return set()
    if not RULES[action].scoped or user.has_role("admin"):
        return None
    return {user.department_id} if user.department_id is not None else set()


def refusal(user: User | None, action: str, *, scoped: bool) -> PermissionDenied:
    """The refusal to raise: the action, and the roles that may, or that only the department was wrong."""
    who = user.username if user is not None else "未登录用户"
    if scoped:
        return PermissionDenied("permission.refused_scoped", user=who, action=action, action_zh=RULES[action].zh)
    roles = sorted(RULES[action].roles or {"admin"}, key=lambda r: ROLES.index(r) if r in ROLES else len(ROLES))
    return PermissionDenied("permission.refused", user=who, action=action, action_zh=RULES[action].zh,
                            roles=" or ".join(roles),
                            roles_zh="或".join(LEAD_ZH if r == "lead" else label(r, "role") for r in roles))

