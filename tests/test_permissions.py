"""The permission table itself (pure): role × department × action, written out independently here."""

from __future__ import annotations

import pytest

from bot.models import User
from bot.permissions import RULES, allowed, may_act, visible_departments

A, B = 1, 2


def person(roles: str, dept: int | None = A, lead: bool = False, active: bool = True) -> User:
    return User(username=roles.replace(",", "_") or "x", roles=roles, department_id=dept, department_lead=lead,
                active=active)


@pytest.mark.parametrize(("user", "action", "dept", "expected"), [
    (person("editor"), "posts.write", None, True),
    (person("editor"), "tickets.read", A, False),
    (person("editor"), "messages.read", A, True),
    (person("editor"), "messages.read", B, False),
    (person("editor"), "posts.schedule", A, True),
    (person("editor"), "posts.schedule", B, False),
    (person("editor"), "posts.schedule", None, False),  # an account of no department: admins only
    (person("reviewer"), "posts.write", None, False),
    (person("reviewer"), "posts.sign", None, True),
    (person("reviewer"), "tickets.read", A, False),
    (person("reviewer", lead=True), "tickets.handle", A, True),  # 部门负责人
    (person("reviewer", lead=True), "tickets.handle", B, False),
    (person("responder"), "tickets.handle", A, True),
    (person("responder"), "tickets.handle", B, False),
    (person("responder"), "tickets.handle", None, False),  # not yet routed: admins only
    (person("responder"), "templates.read", B, False),
    (person("responder", dept=None), "tickets.read", A, False),
    (person("responder"), "digest.send", None, False),
    (person("responder"), "oversight.read", None, True),
    (person("admin", dept=None), "tickets.handle", B, True),
    (person("admin", dept=None), "tickets.handle", None, True),
    (person("admin", dept=None, active=False), "oversight.read", None, False),
    (None, "oversight.read", None, False),
    (None, "anyone", None, True),
])
def test_table(user, action, dept, expected) -> None:
    assert allowed(user, action, dept) is expected


def test_visible_departments_for_lists() -> None:
    assert visible_departments(person("admin", dept=None), "messages.read") is None
    assert visible_departments(person("responder"), "messages.read") == {A}
    assert visible_departments(person("responder", dept=None), "messages.read") == set()
    assert visible_departments(person("approver"), "messages.read") == set()
    assert visible_departments(person("approver"), "oversight.read") is None


def test_every_rule_names_known_roles() -> None:
    known = {"editor", "reviewer", "approver", "responder", "admin", "lead"}
    assert all(rule.roles <= known for rule in RULES.values())
    assert may_act(person("editor,responder"), "tickets.handle")


def test_every_route_action_is_a_rule() -> None:
    from bot.web.access import PLATFORM, ROUTE_ACTIONS

    assert {a for a in ROUTE_ACTIONS.values() if a != PLATFORM} <= set(RULES)
