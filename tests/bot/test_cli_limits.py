"""The command line refuses what no person asks before it loads anything heavy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.bot.cli import main
from cadrebot.handlers.conversation import MAX_MESSAGE_CHARS


def test_ask_refuses_an_overlong_question_without_loading_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path / "empty"))  # no index: loading fails
    assert main(["ask", "政策" * MAX_MESSAGE_CHARS]) == 2
    captured = capsys.readouterr()
    assert "太长" in captured.err and str(MAX_MESSAGE_CHARS) in captured.err
    assert not (tmp_path / "empty" / "index").exists()
