"""Departments (承办部门): the units tickets are routed to, added and edited by admins."""

from __future__ import annotations

from sqlmodel import Session, select

from bot import audit
from bot.errors import GovbotError, NotFound
from bot.models import Department, User
from bot.users import require_role

DEPARTMENT_NAME_MAX = 100  # characters, as Department.name holds


def save_department(*, session: Session, actor: User, name: str, organisation_id: int | None, email: str = "",
                    department_id: int | None = None) -> Department:
    """Add a department (department_id None) or change one; names are unique."""
    require_role(actor, "admin")
    name = name.strip()
    if not name or len(name) > DEPARTMENT_NAME_MAX:
        raise GovbotError("department.name_length", limit=DEPARTMENT_NAME_MAX)
    clash = session.exec(select(Department).where(Department.name == name)).first()
    if clash is not None and clash.id != department_id:
        raise GovbotError("department.name_taken", name=name)
    if department_id is None:
        dept = Department(name=name)
    else:
        dept = session.get(Department, department_id)
        if dept is None:
            raise NotFound("department.id_not_found", department_id=department_id)
    dept.name, dept.organisation_id, dept.email = name, organisation_id, email.strip() or None
    session.add(dept)
    session.flush()
    audit.record(session=session, actor=actor.username, action="department.saved", subject_type="department",
                 subject_id=dept.id, name=name)
    return dept
