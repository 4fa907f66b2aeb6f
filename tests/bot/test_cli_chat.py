"""``cadrebot chat`` through the real command line entry point."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from cadrebot.bot.cli import main
from cadrebot.handlers.conversation import APOLOGY
from cadrebot.handlers.ports import ConversationKey, PolicyAnswer
from cadrebot.indexer.answers import AnswerComposer
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase


@pytest.fixture
def terminal_log() -> Iterator[io.StringIO]:
    """A plain StreamHandler on the root logger, as ``logging.basicConfig`` installs it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_chat_command_files_through_the_service_and_logs_failures_to_a_file(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    terminal_log: io.StringIO,
) -> None:
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CADREBOT_KNOWLEDGE_DIR", str(settings.knowledge_dir))
    real_answer = AnswerComposer.answer

    def answer(self: AnswerComposer, question: str) -> PolicyAnswer:
        if question == "出错了吗？":
            raise RuntimeError("boom")
        return real_answer(self, question)

    monkeypatch.setattr(AnswerComposer, "answer", answer)
    lines = iter(["监测对象识别认定一般不超过多少天？", "出错了吗？", "/report", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))

    assert main(["chat", "--user", "alice"]) == 0

    out = capsys.readouterr().out
    assert "您好，alice！" in out
    assert "一般不超过15天" in out
    assert APOLOGY in out
    assert "（1/11）请输入申报人姓名。" in out
    assert out.rstrip().endswith("再见！")
    # The failure's traceback went to the chat log, not over the conversation.
    assert "Traceback" not in out + terminal_log.getvalue()
    chat_log = (settings.data_dir / "logs" / "chat.log").read_text(encoding="utf-8")
    assert "RuntimeError: boom" in chat_log
    assert any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)

    database = CaseDatabase(settings)
    database.open()
    try:
        with database.unit_of_work() as uow:
            user = uow.users.find("console", "alice")
            state = uow.dialogs.load(ConversationKey("console", "alice"))
    finally:
        database.close()
    assert user is not None and user.display_name == "alice"
    assert state is not None and state.form_name == "risk_report"  # kept for the next session
