"""Follow-ups resolved against the previous question (pure rules), and in the conversation:
the reply says how it was understood, the context comes from the exchange log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.followups import (
    names_topic,
    resolve_followup,
    split_question,
    understood_in,
    understood_line,
)
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, SHANGHAI, FixedClock, at
from tests.support.database import postgres_base_url, private_schema
from tests.support.settings import make_settings

COUNTIES = ("信丰县", "浮梁县", "蓉江新区")


def resolve(message: str, previous: str | None) -> str | None:
    return resolve_followup(message, previous, COUNTIES)


@pytest.mark.parametrize(
    ("previous", "message", "expected"),
    [
        # 那X呢 / X呢: a place replaces the place.
        ("信丰县危房改造什么时候开工？", "那浮梁县呢？", "浮梁县危房改造什么时候开工"),
        ("浮梁县产业奖补怎么申请？", "信丰县呢", "信丰县产业奖补怎么申请"),
        ("信丰县危房改造什么时候开工？", "那省里呢？", "省里危房改造什么时候开工"),
        ("全省光伏电站收益怎么分配？", "那蓉江新区呢？", "蓉江新区光伏电站收益怎么分配"),
        # A year replaces the year.
        ("2024年小额信贷要发放多少？", "2026年呢？", "2026年小额信贷要发放多少"),
        # A level replaces the level.
        ("县级衔接资金用于产业的比例是多少？", "那省级的呢", "省级衔接资金用于产业的比例是多少"),
        ("县定重点帮扶村有多少个？", "乡定的呢？", "乡定重点帮扶村有多少个"),
        # The topic noun: anchored on the words it shares with the previous one.
        ("信丰县低保对象怎么认定？", "特困对象呢？", "信丰县特困对象怎么认定"),
        ("浮梁县道路建设谁负责？", "那桥梁建设呢", "浮梁县桥梁建设谁负责"),
        # Nothing in common: the new topic with the previous place and ask.
        ("浮梁县饮水安全由哪个部门负责？", "危房改造呢？", "浮梁县危房改造由哪个部门负责"),
        # A new ask without a topic: the previous topic and the new ask.
        ("信丰县产业奖补怎么申请？", "钱什么时候发？", "信丰县产业奖补资金什么时候发放"),
        ("信丰县产业奖补资金怎么申请？", "钱什么时候发？", "信丰县产业奖补资金什么时候发放"),
        ("浮梁县产业奖补什么时候申请？", "要公示几天？", "浮梁县产业奖补要公示几天"),
        ("浮梁县产业奖补什么时候申请？", "还有什么条件？", "浮梁县产业奖补什么条件"),
        ("浮梁县雨露计划怎么申请？", "多少钱？", "浮梁县雨露计划多少钱"),
        ("浮梁县饮水安全工作要做什么？", "谁负责？", "浮梁县饮水安全工作谁负责"),
        ("浮梁县产业奖补什么时候申请？", "信丰县什么时候申请？", "信丰县产业奖补什么时候申请"),
    ],
)
def test_followups_are_resolved(previous: str, message: str, expected: str) -> None:
    assert resolve(message, previous) == expected


@pytest.mark.parametrize(
    "message",
    [
        "光伏收益怎么管？",  # names its own topic
        "监测对象识别认定一般不超过多少天？",
        "家里遭了灾怎么办？",
        "谢谢",  # not a question at all
        "好的呢",
        "/help",
        "信丰县产业奖补什么时候申请呢？",  # a full question ending in 呢
    ],
)
def test_new_questions_are_not_followups(message: str) -> None:
    assert resolve(message, "浮梁县饮水安全由哪个部门负责？") is None


def test_nothing_to_resolve_against() -> None:
    assert resolve("那浮梁县呢？", None) is None
    assert resolve("要公示几天？", "") is None


def test_topic_and_ask() -> None:
    assert split_question("浮梁县饮水安全由哪个部门负责？") == ("浮梁县饮水安全", "由哪个部门负责")
    assert split_question("信丰县危房改造什么时候要开工") == ("信丰县危房改造", "什么时候要开工")
    assert not names_topic("村里要公示几天")
    assert names_topic("光伏收益怎么管")


def test_the_understood_line_round_trips() -> None:
    line = understood_line("信丰县产业奖补资金什么时候发放")
    assert line == "（按“信丰县产业奖补资金什么时候发放”理解）"
    assert understood_in(f"{line}\n资金在年底前发放。") == "信丰县产业奖补资金什么时候发放"
    assert understood_in("资金在年底前发放。") is None


# ------------------------------------------------------------------ in the conversation


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(2026, 5, 12))


def service(
    database: CaseDatabase, answerer: FakeAnswerer, clock: FixedClock
) -> ConversationService:
    return ConversationService(database.unit_of_work, answerer, clock=clock, idle_timeout=IDLE)


def test_a_followup_is_answered_as_understood(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    core = service(database, answerer, clock)
    core.handle("console", "u1", "老乡", "信丰县产业奖补怎么申请？")
    replies = core.handle("console", "u1", "老乡", "钱什么时候发？")
    assert answerer.questions[-1] == "信丰县产业奖补资金什么时候发放"
    assert replies[0].text.splitlines()[0] == "（按“信丰县产业奖补资金什么时候发放”理解）"
    assert replies[0].is_answer


def test_followups_chain_and_survive_a_restart(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    service(database, answerer, clock).handle(
        "console", "u1", "老乡", "信丰县危房改造什么时候开工？"
    )
    # A new service (a restart, another worker) reads the context from the exchange log.
    again = service(database, answerer, clock)
    again.handle("console", "u1", "老乡", "那浮梁县呢？")
    assert answerer.questions[-1] == "浮梁县危房改造什么时候开工"
    again.handle("console", "u1", "老乡", "要公示几天？")
    assert answerer.questions[-1] == "浮梁县危房改造要公示几天"


def test_context_is_per_conversation_and_recent(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    core = service(database, answerer, clock)
    core.handle("console", "u1", "老乡", "信丰县危房改造什么时候开工？")
    core.handle("console", "u2", "邻居", "那浮梁县呢？")
    assert answerer.questions[-1] == "那浮梁县呢？"  # another chat: nothing to resolve
    clock.now += IDLE + timedelta(minutes=1)
    replies = core.handle("console", "u1", "老乡", "那浮梁县呢？")
    assert answerer.questions[-1] == "那浮梁县呢？"  # too long ago
    assert "理解" not in replies[0].text


def test_a_new_question_starts_fresh(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    core = service(database, answerer, clock)
    core.handle("console", "u1", "老乡", "信丰县危房改造什么时候开工？")
    replies = core.handle("console", "u1", "老乡", "监测对象识别认定一般不超过多少天？")
    assert answerer.questions[-1] == "监测对象识别认定一般不超过多少天？"
    assert not replies[0].text.startswith("（按")


def test_ask_command_followup(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    core = service(database, answerer, clock)
    core.handle("console", "u1", "老乡", "/ask 信丰县危房改造什么时候开工？")
    core.handle("console", "u1", "老乡", "/ask 那浮梁县呢？")
    assert answerer.questions[-1] == "浮梁县危房改造什么时候开工"
    assert len(answerer.questions) == 2  # answered once each: the peek's answer was used


def test_more_sources_of_a_followup(database: CaseDatabase, clock: FixedClock) -> None:
    answerer = FakeAnswerer()
    core = service(database, answerer, clock)
    core.handle("console", "u1", "老乡", "信丰县危房改造什么时候开工？")
    core.handle("console", "u1", "老乡", "那浮梁县呢？")
    core.handle("console", "u1", "老乡", "/more")
    assert answerer.questions[-1] == "浮梁县危房改造什么时候开工"


@pytest.mark.postgres
def test_a_followup_survives_a_restart_on_postgresql(tmp_path: Path, clock: FixedClock) -> None:
    """Production shape: the context is in PostgreSQL, read by whichever process (or restarted
    one) gets the next message."""
    with private_schema(postgres_base_url(), "cadrebot_followup") as url:
        settings = make_settings(tmp_path, database_url=url)
        answerer = FakeAnswerer()
        first = CaseDatabase(settings, tz=SHANGHAI)
        first.open()
        try:
            service(first, answerer, clock).handle(
                "telegram", "42", "老乡", "信丰县危房改造什么时候开工？"
            )
        finally:
            first.close()  # the process is gone
        second = CaseDatabase(settings, tz=SHANGHAI)
        second.open()
        try:
            replies = service(second, answerer, clock).handle(
                "telegram", "42", "老乡", "那浮梁县呢？"
            )
        finally:
            second.close()
    assert answerer.questions[-1] == "浮梁县危房改造什么时候开工"
    assert replies[0].text.startswith("（按“浮梁县危房改造什么时候开工”理解）")
