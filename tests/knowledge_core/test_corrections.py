"""Corrections on the real index of the seed documents and the real model: a question asked in
the conversation, found in the log, corrected by an admin, answered from the correction with
its citation from then on; across an edit, a full rebuild, a restart, and a removal that
brings the documents' answer back.

The questions and answers here are written for these tests, not taken from any eval set."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cadrebot.bot.wiring import ConversationStack, Knowledge, build_conversation_stack
from cadrebot.handlers.knowledge_desk import BuildStage, KnowledgeDesk
from cadrebot.handlers.ports import QuestionView, Role, User
from cadrebot.handlers.turns import Inbound
from cadrebot.indexer.answers import AnswerComposer
from cadrebot.indexer.builder import IndexBuilder
from cadrebot.indexer.corrections import CorrectionFile, parse_corrections, same_question
from cadrebot.indexer.lexicon import LEXICON_FILE
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.tokenizer import PolicyTokenizer
from tests.support.knowledge import CountingEmbedder
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow

ZONE = ZoneInfo("Asia/Shanghai")
ADMIN = User(1, "web", "admin", "王管理", Role.ADMIN)
SUBSIDY = "信丰县产业奖补每户补助多少钱？"
SUBSIDY_ANSWER = (
    "信丰县产业奖补按县农业部门当年公布的奖补方案执行，每户补助金额以村里公示的核实结果为准。"
)
SUBSIDY_SOURCE = "信丰县农业部门《2024年产业奖补实施方案》"
TRAINING = "蓉江新区的雨露计划补助怎么申请？"
TRAINING_ANSWER = (
    "雨露计划补助由学生家庭每学期开学后向户籍所在镇（管理处）申请，提交在校证明，经审核后发放。"
)


_chats = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 30, tzinfo=ZONE)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def tokenizer() -> PolicyTokenizer:
    warm = PolicyTokenizer()
    warm.warm_up()
    return warm


@pytest.fixture
def dirs(tmp_path: Path, full_index_dir: Path, knowledge_copy: Path) -> tuple[Path, Path]:
    """A copy of the whole knowledge base's index (and its embedding cache) and folder."""
    data_dir = tmp_path / "var"
    shutil.copytree(full_index_dir, data_dir)
    return data_dir, knowledge_copy


def open_stack(
    dirs: tuple[Path, Path], embedder: CountingEmbedder, tokenizer: PolicyTokenizer, clock: Clock
) -> ConversationStack:
    """The stack as wiring builds it, on the warm model (a new searcher: a new process)."""
    settings = make_settings(*dirs)
    searcher = HybridSearcher(
        settings, embedder, tokenizer, lexicon_path=settings.knowledge_dir / LEXICON_FILE
    )
    knowledge = Knowledge(
        embedder,
        tokenizer,
        IndexBuilder(settings, embedder, tokenizer),
        searcher,
        AnswerComposer(searcher),
    )
    stack = build_conversation_stack(settings, knowledge=knowledge, clock=clock)
    stack.open()
    return stack


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stack(
    dirs: tuple[Path, Path],
    shared_embedder: CountingEmbedder,
    tokenizer: PolicyTokenizer,
    clock: Clock,
) -> Iterator[ConversationStack]:
    opened = open_stack(dirs, shared_embedder, tokenizer, clock)
    yield opened
    opened.close()


def ask(stack: ConversationStack, question: str) -> str:
    """A farmer's question through the conversation core (a chat of its own, so it is never
    taken for a follow-up of the one before); the reply's text."""
    chat = f"farmer-{next(_chats)}"
    result = stack.service.turn(Inbound("console", chat, "张三", question))
    return "\n".join(r.text for r in result.replies)


def settled(desk: KnowledgeDesk, job_id: str) -> None:
    status = desk.jobs.wait(job_id, 300)
    assert status.stage is BuildStage.DONE, status.summary


def test_a_logged_question_corrected_is_answered_from_the_correction(
    stack: ConversationStack,
) -> None:
    desk = stack.knowledge_desk
    before = ask(stack, SUBSIDY)
    assert SUBSIDY_ANSWER not in before and "县乡村振兴局解答" not in before
    logged = desk.log(ADMIN, QuestionView.UNANSWERED).entries[0]
    assert logged.question == SUBSIDY and logged.found is False
    draft = desk.correction_draft(ADMIN, logged.exchange_id)

    saved = desk.add_correction(ADMIN, draft.question, SUBSIDY_ANSWER, SUBSIDY_SOURCE)
    settled(desk, saved.job_id)
    after = ask(stack, SUBSIDY)
    assert after.startswith(SUBSIDY_ANSWER)
    assert f"出处：县乡村振兴局解答，2026-12-01（依据：{SUBSIDY_SOURCE}）" in after
    # The same question in slightly other words, and only that question.
    assert ask(stack, "信丰县的产业奖补每户能补多少钱").startswith(SUBSIDY_ANSWER)
    for other in ("浮梁县产业奖补每户补助多少钱？", "信丰县产业奖补每户补助什么时候发？"):
        assert SUBSIDY_ANSWER not in ask(stack, other)
    # The answer as the hit test shows it, and the correction among the documents.
    test = desk.hit_test(ADMIN, SUBSIDY)
    assert test.answer.citations[0].curated and test.answer.answer == SUBSIDY_ANSWER
    curated = [d for d in desk.documents(ADMIN).documents if d.curated]
    assert [(d.chunks, d.source) for d in curated] == [(1, "corrections.toml")]
    with stack.database.unit_of_work() as uow:  # /kb does not take the file for a document
        assert "corrections.toml" not in stack.admin.list_documents(uow)


def test_a_correction_wins_over_the_documents_until_it_is_removed(
    stack: ConversationStack, clock: Clock
) -> None:
    desk = stack.knowledge_desk
    original = ask(stack, TRAINING)
    assert "赣蓉振领字〔2023〕1号" in original and TRAINING_ANSWER not in original

    saved = desk.add_correction(ADMIN, TRAINING, TRAINING_ANSWER, "区社管局说明")
    settled(desk, saved.job_id)
    corrected = ask(stack, TRAINING)
    assert corrected.startswith(TRAINING_ANSWER)
    assert "出处：县乡村振兴局解答，2026-12-01（依据：区社管局说明）" in corrected

    clock.now = datetime(2026, 12, 5, 16, 0, tzinfo=ZONE)
    edited_answer = TRAINING_ANSWER.replace("每学期开学后", "每年9月")
    edited = desk.edit_correction(ADMIN, saved.correction.id, TRAINING, edited_answer, "区社管局")
    settled(desk, edited.job_id)
    again = ask(stack, TRAINING)
    assert (
        again.startswith(edited_answer)
        and "县乡村振兴局解答，2026-12-05（依据：区社管局）" in again
    )

    removed = desk.remove_correction(ADMIN, saved.correction.id)
    settled(desk, removed.job_id)
    assert ask(stack, TRAINING) == original


def test_corrections_survive_a_full_rebuild_and_a_restart(
    stack: ConversationStack,
    dirs: tuple[Path, Path],
    shared_embedder: CountingEmbedder,
    tokenizer: PolicyTokenizer,
    clock: Clock,
) -> None:
    desk = stack.knowledge_desk
    settled(desk, desk.add_correction(ADMIN, SUBSIDY, SUBSIDY_ANSWER, SUBSIDY_SOURCE).job_id)
    # `cadrebot index --rebuild`: everything re-chunked from the folder.
    report = stack.knowledge.builder.build(rebuild=True)
    assert not report.up_to_date and report.chunks == stack.knowledge.searcher.index.chunk_count
    assert stack.knowledge.searcher.reload_if_changed()
    assert ask(stack, SUBSIDY).startswith(SUBSIDY_ANSWER)
    stack.close()
    # Another process (or this one restarted) on the same folder and index store.
    restarted = open_stack(dirs, shared_embedder, tokenizer, clock)
    try:
        assert ask(restarted, SUBSIDY).startswith(SUBSIDY_ANSWER)
        assert [c.question for c in restarted.knowledge_desk.corrections(ADMIN)] == [SUBSIDY]
    finally:
        restarted.close()
    stack.open()


def test_the_file_is_text_that_a_hand_edit_may_break_only_loudly(tmp_path: Path) -> None:
    store = CorrectionFile(tmp_path)
    tricky = '"]]\n[[correction]]\nid = "x"\\n<b>'
    added = store.add("问题一？", tricky, tricky, "王管理", datetime(2026, 12, 1).date())
    assert parse_corrections((tmp_path / "corrections.toml").read_text("utf-8")) == [added]
    assert store.get(added.id) == added and added.answer == tricky
    (tmp_path / "corrections.toml").write_text('[[correction]]\nid = "a"\nquestion = ""\n')
    with pytest.raises(ValueError, match="第 1 条更正缺少“question”"):
        store.list_all()


def test_the_same_question_in_other_words_but_not_another_one() -> None:
    def places(text: str) -> list[str]:
        return []

    assert same_question("/ask 信丰县产业奖补每户补助多少钱吗？", SUBSIDY, places)
    assert not same_question("浮梁县产业奖补每户补助多少钱？", SUBSIDY, places)
    assert not same_question("信丰县2025年产业奖补每户补助多少钱？", SUBSIDY, places)
    assert not same_question("信丰县产业奖补怎么申请？", SUBSIDY, places)
    # Nearly the same words, another kind of fact asked for.
    assert not same_question("信丰县产业奖补每户补助什么时候发？", SUBSIDY, places)
