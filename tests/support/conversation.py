"""Driving the conversation core the way a user does, for tests of what it produces."""

from __future__ import annotations

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.invites import RoleBook
from cadrebot.handlers.ports import PolicyAnswerer
from cadrebot.handlers.turns import Inbound, TurnResult
from cadrebot.storage import CaseDatabase

from .answers import FakeAnswerer
from .clock import IDLE, FixedClock, at
from .forms import RISK_TYPED

ADMIN = "admin1"
"""The console user the core is told is an admin (``RoleBook({"console": {ADMIN}})``)."""
CODE = "YQ-TESTCODE"
"""The invite code the core hands out (``invite_codes=lambda: CODE``)."""


def console_service(
    database: CaseDatabase, answerer: PolicyAnswerer | None = None
) -> ConversationService:
    """The core on ``database`` with :data:`ADMIN` as the console's admin, handing out
    :data:`CODE` as invite code, its clock at 2026-05-12 09:00."""
    return ConversationService(
        database.unit_of_work,
        answerer or FakeAnswerer(),
        clock=FixedClock(at(2026, 5, 12)),
        idle_timeout=IDLE,
        roles=RoleBook({"console": frozenset({ADMIN})}),
        invite_codes=lambda: CODE,
    )


def turn(
    service: ConversationService,
    text: str,
    user: str = "farmer",
    *,
    button: bool = False,
    replying_to: str | None = None,
) -> TurnResult:
    return service.turn(
        Inbound("console", user, f"用户{user}", text, via_button=button, replying_to=replying_to)
    )


def file_risk_report(service: ConversationService, user: str = "farmer") -> str:
    """File a risk report as ``user``; its case number."""
    turn(service, "/report", user)
    for answer in RISK_TYPED:
        turn(service, answer, user)
    filed = turn(service, "确认提交", user).text
    return filed.split("编号：")[1].split("。")[0]


def make_cadre(service: ConversationService, user: str = "cadre") -> None:
    """``user`` registers as a cadre of 大塘埠镇 with an invite from the admin."""
    turn(service, "/invite 大塘埠镇", ADMIN)
    assert "登记成功" in turn(service, f"/register {CODE}", user).text
