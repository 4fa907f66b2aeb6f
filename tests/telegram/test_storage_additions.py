"""The repository methods the channel added: invites, feedback and stats, kb versions, users."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from cadrebot.handlers.ports import (
    ConcurrentUpdateError,
    ConversationKey,
    Exchange,
    ExchangeKind,
    Feedback,
    KbVersion,
    NewInvite,
    NotFoundError,
    Role,
)
from cadrebot.storage import SqlUnitOfWorkFactory
from tests.support.clock import SHANGHAI as ZONE
from tests.support.database import migrated_engine

NOW = datetime(2026, 5, 20, 9, 30, tzinfo=ZONE)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    with migrated_engine(db_url) as engine:
        yield engine


@pytest.fixture
def factory(engine: Engine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, tz=ZONE)


def test_invite_lifecycle(factory: SqlUnitOfWorkFactory) -> None:
    with factory() as uow:
        admin = uow.users.get_or_create("telegram", "1", "管理员")
        cadre = uow.users.get_or_create("telegram", "2", "干部")
        invite = uow.invites.create(
            NewInvite("YQ-AAAA2222", "大塘埠镇", None, admin.id, NOW, NOW + timedelta(days=7))
        )
        with pytest.raises(ConcurrentUpdateError):
            uow.invites.create(NewInvite("YQ-AAAA2222", "别处", None, admin.id, NOW))
        uow.commit()
    assert invite.usable(NOW) and not invite.usable(NOW + timedelta(days=8))
    assert invite.created_at == NOW and invite.role is Role.CADRE
    with factory() as uow:
        used = uow.invites.redeem("YQ-AAAA2222", cadre.id, NOW)
        assert used.used_by_id == cadre.id and used.used_at == NOW
        with pytest.raises(ConcurrentUpdateError):
            uow.invites.redeem("YQ-AAAA2222", admin.id, NOW)
        with pytest.raises(NotFoundError):
            uow.invites.redeem("YQ-NOPE0000", admin.id, NOW)
        uow.invites.create(NewInvite("YQ-BBBB3333", "安西镇", "坪石村", admin.id, NOW))
        assert [c.code for c in uow.invites.list_codes()] == ["YQ-BBBB3333"]
        assert len(uow.invites.list_codes(include_closed=True)) == 2
        assert uow.invites.revoke("YQ-BBBB3333").revoked is True
        with pytest.raises(NotFoundError):
            uow.invites.revoke("YQ-NOPE0000")
        assert uow.invites.list_codes() == []
        uow.commit()


def _exchange(
    chat: str, text: str, kind: ExchangeKind, found: bool | None, at: datetime
) -> Exchange:
    return Exchange("telegram", chat, None, at, text, "答复", kind, found=found)


def test_exchange_feedback_latest_and_stats(factory: SqlUnitOfWorkFactory) -> None:
    with factory() as uow:
        uow.exchanges.record(
            _exchange("c1", "问题一", ExchangeKind.QA, True, NOW - timedelta(days=9))
        )
        uow.exchanges.record(_exchange("c1", "北京公积金", ExchangeKind.QA, False, NOW))
        uow.exchanges.record(_exchange("c2", "北京公积金", ExchangeKind.FORM_QA, False, NOW))
        uow.exchanges.record(_exchange("c2", "上海", ExchangeKind.QA, False, NOW))
        uow.exchanges.record(_exchange("c1", "/help", ExchangeKind.COMMAND, None, NOW))
        uow.commit()
    key = ConversationKey("telegram", "c1")
    with factory() as uow:
        latest = uow.exchanges.latest(key, frozenset({ExchangeKind.QA}))
        assert latest is not None and latest.exchange.inbound_text == "北京公积金"
        uow.exchanges.set_feedback(latest.id, Feedback.DOWN)
        with pytest.raises(NotFoundError):
            uow.exchanges.set_feedback(10_000, Feedback.UP)
        uow.commit()
    with factory() as uow:
        got = uow.exchanges.get(latest.id)
        assert got is not None and got.feedback is Feedback.DOWN and got.exchange.at == NOW
        since = NOW - timedelta(days=1)
        questions = uow.exchanges.questions_since(since)
        assert len(questions) == 3 and all(q.found is False for q in questions)
        assert [q.feedback for q in questions].count(Feedback.DOWN) == 1
        assert uow.exchanges.top_unanswered(since) == [("北京公积金", 2), ("上海", 1)]


def test_kb_versions_and_user_directory(factory: SqlUnitOfWorkFactory) -> None:
    with factory() as uow:
        uow.kb_versions.record(KbVersion("v1", NOW - timedelta(hours=1), 5, 300))
        uow.kb_versions.record(KbVersion("v2", NOW, 6, 320))
        farmer = uow.users.get_or_create("telegram", "10", "农户")
        cadre = uow.users.get_or_create("telegram", "11", "干部")
        uow.users.set_role(cadre.id, Role.CADRE, "大塘埠镇", None)
        uow.users.get_or_create("console", "x", "终端")
        uow.commit()
    with factory() as uow:
        versions = uow.kb_versions.recent()
        assert [(v.version_id, v.status) for v in versions] == [
            ("v2", "active"),
            ("v1", "superseded"),
        ]
        assert versions[0].built_at == NOW
        staff = uow.users.list_users(roles=frozenset({Role.CADRE}), channel="telegram")
        assert [u.external_id for u in staff] == ["11"]
        everyone = uow.users.list_users(roles=frozenset({Role.FARMER}))
        assert {u.external_id for u in everyone} == {farmer.external_id, "x"}
