"""Policy questions are answered with no database transaction open (SQLite write lock free).

The real service on the real SQLite case database; the answerer is a probe that tries to take
the database write lock itself, on its own connection, without waiting.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from cadrebot.handlers.conversation import ConversationService, replies_text
from cadrebot.handlers.ports import ConversationKey, ExchangeKind
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswer
from tests.support.clock import IDLE, SHANGHAI, FixedClock
from tests.support.settings import make_settings

from .conftest import NOW

# Longer than the 20 characters a name may have, so the name field rejects it as an answer.
LONG_QUESTION = "请问监测对象从发现风险线索到完成识别认定一般不超过多少天？"


def write_lock_is_free(database_file: Path) -> bool:
    """Can a separate connection take the write lock right now, waiting not at all?"""
    connection = sqlite3.connect(database_file, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    else:
        connection.execute("ROLLBACK")
        return True
    finally:
        connection.close()


class ProbingAnswerer:
    """Records, for every question, whether the write lock was free while answering it."""

    def __init__(self, database_file: Path) -> None:
        self._file = database_file
        self.questions: list[str] = []
        self.lock_was_free: list[bool] = []
        self.during: Callable[[], None] | None = None  # runs inside the answerer, once

    def answer(self, question: str) -> FakeAnswer:
        self.questions.append(question)
        self.lock_was_free.append(write_lock_is_free(self._file))
        during, self.during = self.during, None
        if during is not None:
            during()
        return FakeAnswer(f"答：{question}（一般不超过15天）", chunk_ids=("c-1",))


@dataclass
class Setup:
    database: CaseDatabase
    answerer: ProbingAnswerer
    service: ConversationService
    clock: FixedClock

    def say(self, message: str, user: str = "u1") -> str:
        return replies_text(self.service.handle("console", user, f"用户{user}", message))

    def exchanges(self) -> list[tuple[str, str]]:
        with self.database.engine.connect() as connection:
            rows = connection.execute(text("SELECT kind, inbound_text FROM exchanges ORDER BY id"))
            return [(row.kind, row.inbound_text) for row in rows]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    settings = make_settings(tmp_path)
    database = CaseDatabase(settings, tz=SHANGHAI)
    database.open()
    database_file = tmp_path / "cadrebot.sqlite3"
    assert database_file.exists()
    answerer = ProbingAnswerer(database_file)
    clock = FixedClock(NOW)
    service = ConversationService(database.unit_of_work, answerer, clock=clock, idle_timeout=IDLE)
    yield Setup(database, answerer, service, clock)
    database.close()


def test_the_probe_sees_a_unit_of_work_holding_the_lock(setup: Setup, tmp_path: Path) -> None:
    database_file = tmp_path / "cadrebot.sqlite3"
    assert write_lock_is_free(database_file)
    key = ConversationKey("console", "u1")
    with setup.database.unit_of_work() as uow, uow.dialogs.locked(key):
        uow.dialogs.load(key)
        assert not write_lock_is_free(database_file)
    assert write_lock_is_free(database_file)


def test_policy_question_is_answered_with_no_transaction_open(setup: Setup) -> None:
    reply = setup.say("监测对象识别认定一般不超过多少天？")
    assert reply == "答：监测对象识别认定一般不超过多少天？（一般不超过15天）"
    assert setup.answerer.lock_was_free == [True]
    assert setup.exchanges() == [(ExchangeKind.QA.value, "监测对象识别认定一般不超过多少天？")]


def test_question_in_the_middle_of_a_form_is_answered_with_no_transaction_open(
    setup: Setup,
) -> None:
    setup.say("/report")
    with setup.database.unit_of_work() as uow:
        before = uow.dialogs.load(ConversationKey("console", "u1"))
    reply = setup.say(LONG_QUESTION)
    assert "一般不超过15天" in reply
    assert "您正在填写《防返贫风险自主申报》，请继续" in reply
    assert setup.answerer.lock_was_free == [True]
    with setup.database.unit_of_work() as uow:
        after = uow.dialogs.load(ConversationKey("console", "u1"))
    assert after == before  # a question is no step of the form
    assert setup.exchanges()[-1][0] == ExchangeKind.FORM_QA.value


def test_question_after_an_expired_form_is_answered_with_no_transaction_open(
    setup: Setup,
) -> None:
    setup.say("/report")
    setup.clock.now = NOW + IDLE + timedelta(minutes=1)
    reply = setup.say("产业奖补怎么申请？")
    assert "已自动取消" in reply and "答：产业奖补怎么申请？" in reply
    assert setup.answerer.lock_was_free == [True]


def test_form_answers_and_commands_never_reach_the_answerer(setup: Setup) -> None:
    setup.say("/report")
    setup.say("张三")
    setup.say("/help")
    assert setup.answerer.questions == []


def test_form_started_meanwhile_question_is_answered_once_in_the_form(setup: Setup) -> None:
    # While the answer is being computed, a concurrent message of the same chat starts a form
    # (it can: no lock is held). The locked turn must see the form and act on it.
    setup.answerer.during = lambda: setup.say("/report")
    reply = setup.say(LONG_QUESTION)
    assert "您正在填写《防返贫风险自主申报》" in reply and "姓名" in reply
    assert setup.answerer.questions == [LONG_QUESTION]  # the prepared answer was reused
    kinds = [kind for kind, _ in setup.exchanges()]
    assert kinds == [ExchangeKind.FORM.value, ExchangeKind.FORM_QA.value]


def test_form_started_meanwhile_message_becomes_the_form_answer(setup: Setup) -> None:
    setup.answerer.during = lambda: setup.say("/report")
    reply = setup.say("王小明")  # outside a form a question; in it, a valid name
    assert "身份证号码" in reply  # serialised after /report: it answered the first field
    assert "答：" not in reply
    with setup.database.unit_of_work() as uow:
        state = uow.dialogs.load(ConversationKey("console", "u1"))
    assert state is not None and state.answers == {"name": "王小明"}


def test_a_slow_answer_does_not_block_other_chats(setup: Setup) -> None:
    answering = threading.Event()
    release = threading.Event()
    results: list[str] = []

    def slow() -> None:
        answering.set()
        assert release.wait(10), "the other chat could not proceed while we were answering"

    setup.answerer.during = slow
    asker = threading.Thread(target=lambda: results.append(setup.say("低保怎么申请？", "a")))
    asker.start()
    try:
        assert answering.wait(10)
        # Another farmer files form steps while the first answer is still being computed.
        assert "姓名" in setup.say("/report", "b")
        assert "身份证号码" in setup.say("李四", "b")
    finally:
        release.set()
        asker.join(10)
    assert results == ["答：低保怎么申请？（一般不超过15天）"]
