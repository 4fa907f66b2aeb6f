"""The rules of case work: who may see and move a case, the refusals, deadlines.

Workflows
---------
Each form declares the status workflow of the cases it files (``FormSpec.workflow``, see
:mod:`cadrebot.handlers.forms.risk_report` and :mod:`cadrebot.handlers.forms.subsidy`); the
case desk (:mod:`cadrebot.handlers.casework`) applies them: allowed transitions, required
notes, guards, and the due dates a transition sets.

Access: admins everything; cadres the cases of their jurisdiction (their 乡镇, and their
村 if they have one) by place-register id (:mod:`cadrebot.handlers.places`), never by the
text typed; farmers only their own cases, read-only. A case whose township the register did
not know has no township id: it waits in the admins' unassigned queue (``/cases 未分配``).
ID numbers are masked in every view unless the viewer is an admin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from cadrebot.handlers.access import NotFound, Refusal
from cadrebot.handlers.access import PermissionDenied as PermissionDenied
from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.forms.workflow import Workflow
from cadrebot.handlers.places import clean_place
from cadrebot.handlers.ports import (
    Case,
    CaseQuery,
    Role,
    User,
)


def workflows_of(forms: FormRegistry) -> Mapping[str, Workflow]:
    """The status workflow of each case type, as the registry's forms declare them."""
    return {form.workflow.case_type: form.workflow for form in forms.all()}


# A case refusal is a refusal like any other (see handlers/access.py); the names stay for
# the case desk's callers.
CaseError = Refusal


class CaseNotFound(NotFound):
    pass


class IllegalTransition(CaseError):
    def __init__(self, message: str, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class NoteRequired(CaseError):
    pass


# ---------------------------------------------------------------------- access


def in_jurisdiction(user: User, case: Case) -> bool:
    """A cadre's 乡镇 (and 村, if the cadre has one) contains the case, by register id (an
    unregistered 村 by its cleaned name)."""
    if user.township_id is None or user.township_id != case.township_id:
        return False
    if user.village_id is not None:
        return user.village_id == case.village_id
    return user.village is None or clean_place(user.village) == clean_place(case.village)


def can_work(user: User, case: Case) -> bool:
    """May ``user`` change the case's status?"""
    if user.role is Role.ADMIN:
        return True
    return user.role is Role.CADRE and in_jurisdiction(user, case)


def can_view(user: User, case: Case) -> bool:
    return can_work(user, case) or case.submitter_id == user.id


def visible_query(user: User) -> CaseQuery:
    """The cases ``user`` may list (before any status filter)."""
    if user.role is Role.ADMIN:
        return CaseQuery()
    if user.role is Role.CADRE and user.township_id is not None:
        if user.village_id is not None:
            return CaseQuery(township_id=user.township_id, village_id=user.village_id)
        village = clean_place(user.village) if user.village else None
        return CaseQuery(township_id=user.township_id, village=village)
    return CaseQuery(submitter_id=user.id)


# ---------------------------------------------------------------------- deadlines


@dataclass(frozen=True)
class DueItem:
    case: Case
    due_name: str
    due_on: date
    days_left: int  # negative when overdue
