"""Fill a case database through the real repositories and read it all back."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cadrebot.handlers.ports import (
    CaseQuery,
    ConversationKey,
    DialogPhase,
    DialogState,
    Exchange,
    ExchangeKind,
    Feedback,
    KbVersion,
    NewCase,
    NewInvite,
    Role,
)
from cadrebot.storage import SqlUnitOfWorkFactory
from tests.support.cases import risk_case
from tests.support.clock import at

T0 = at(2026, 3, 2, 9, 30)
KEY = ConversationKey("telegram", "5001")
ALL_ROLES = frozenset(Role)
DUE = {"识别认定": date(2026, 3, 17)}


def fill(factory: SqlUnitOfWorkFactory) -> None:
    """Users, cases with history, the Q&A log with feedback, a form in progress, invites, kb."""
    with factory() as uow:
        farmer = uow.users.get_or_create("telegram", "5001", "张三")
        cadre = uow.users.get_or_create("telegram", "5002", "李村干部")
        uow.users.set_role(cadre.id, Role.CADRE, "大塘埠镇", "坪石村")
        first = uow.cases.create(risk_case(farmer.id, T0, due_dates=DUE))
        uow.cases.create(risk_case(farmer.id, T0 + timedelta(hours=1), name="王五", due_dates=DUE))
        uow.cases.create(
            NewCase(
                case_type="subsidy",
                number_prefix="JB",
                status="已申报",
                fields={"申请人": "张三", "产业类型": "种植业", "规模": "脐橙 12 亩"},
                submitter_id=farmer.id,
                township="大塘埠镇",
                village="坪石村",
                submitted_at=T0 + timedelta(days=1),
            )
        )
        uow.cases.transition(
            first.number,
            expected_status="已受理",
            to_status="核实中",
            actor_id=cadre.id,
            at=T0 + timedelta(days=2),
            note="已入户走访",
            due_dates={"入户核实": date(2026, 3, 9)},
        )
        uow.exchanges.record(
            Exchange(
                channel="telegram",
                chat_id="5001",
                user_id=farmer.id,
                at=T0,
                inbound_text="监测对象识别认定一般不超过多少天？",
                reply_text="一般不超过15天。",
                kind=ExchangeKind.QA,
                found=True,
                chunk_ids=("abc-1", "abc-2"),
                latency_ms=42,
                kb_version="v1",
            )
        )
        uow.dialogs.save(
            DialogState(
                key=KEY,
                form_name="subsidy",
                current_field="规模",
                phase=DialogPhase.ASKING,
                answers={"申请人": "张三", "产业类型": "种植业"},
                started_at=T0,
                updated_at=T0 + timedelta(minutes=3),
                scratch={"history": ["申请人", "产业类型"]},
            )
        )
        uow.invites.create(
            NewInvite(
                code="DTB-7F3K",
                township="大塘埠镇",
                village="坪石村",
                created_by_id=None,
                created_at=T0,
                expires_at=T0 + timedelta(days=7),
            )
        )
        uow.kb_versions.record(
            KbVersion(version_id="v1", built_at=T0, doc_count=5, chunk_count=232)
        )
        uow.commit()
    with factory() as uow:
        logged = uow.exchanges.latest(KEY, frozenset({ExchangeKind.QA}))
        assert logged is not None
        uow.exchanges.set_feedback(logged.id, Feedback.UP)
        uow.commit()


def snapshot(factory: SqlUnitOfWorkFactory) -> dict[str, Any]:
    """Everything :func:`fill` wrote, as the repositories hand it back."""
    with factory() as uow:
        cases = uow.cases.list_cases(CaseQuery(), limit=100)
        return {
            "users": list(uow.users.list_users(roles=ALL_ROLES)),
            "cases": list(cases.items),
            "total": cases.total,
            "events": {c.number: list(uow.cases.events(c.number)) for c in cases.items},
            "exchange": uow.exchanges.latest(KEY, frozenset(ExchangeKind)),
            "dialog": uow.dialogs.load(KEY),
            "invites": list(uow.invites.list_codes(include_closed=True)),
            "kb_versions": list(uow.kb_versions.recent()),
        }
