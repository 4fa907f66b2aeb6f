"""``cadrebot user add|list|disable``: the operators' contract, on a real database, without
building or loading the index."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cadrebot.bot.cli import main
from tests.support.paths import REPO_KNOWLEDGE


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CADREBOT_KNOWLEDGE_DIR", str(REPO_KNOWLEDGE))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CADREBOT_DATABASE_URL", raising=False)
    return tmp_path / "var"


def test_add_reads_the_password_from_stdin_list_and_disable(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert main(["user", "add", "Boss", "--role", "admin"]) == 0
    assert main(["user", "add", "li", "--role", "cadre", "--township", "潭东",
                 "--password", "pass-word-2"]) == 0  # fmt: skip
    assert main(["user", "list"]) == 0
    out = capsys.readouterr().out
    assert "已创建账号 boss（admin，全县）" in out
    assert "boss\tadmin\t-\tactive" in out
    assert "li\tcadre\t潭东镇\tactive" in out
    assert "s3cret" not in out and "pass-word-2" not in out
    assert main(["user", "disable", "li"]) == 0
    assert main(["user", "list"]) == 0
    assert "li\tcadre\t潭东镇\tdisabled" in capsys.readouterr().out
    assert not (env / "index").exists()  # accounts never build the index


def test_bad_input_is_refused_with_exit_code_2(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "add", "li", "--role", "cadre", "--password", "pass-word-2"]) == 2
    assert "需要填写所辖乡镇" in capsys.readouterr().err
    assert main(["user", "disable", "nobody"]) == 2
    assert "没有找到用户" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["user", "add", "li", "--role", "farmer", "--password", "pass-word-2"])
