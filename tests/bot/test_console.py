"""``cadrebot chat`` end to end: the real stack (tiny knowledge base, real default embedder,
SQLite under a temporary data dir), driven through scripted read/write callables."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import date

import pytest
from sqlalchemy import text

from cadrebot.bot.console import GOODBYE, PROMPT, TOGGLE_HINT, run_console
from cadrebot.handlers.ports import CaseQuery, Role
from tests.support.forms import VALID_ID

from .conftest import StackFactory

# Same number with a wrong check character: must be refused and re-asked.
BAD_ID = VALID_ID[:17] + ("1" if VALID_ID[17] != "1" else "2")
USER = "tester"
CASE_NUMBER = re.compile(r"FX-2026-\d{6}")


class Script:
    """Feeds typed lines to the console and records what it wrote after each one."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._typed: str | None = None
        self.prompts: list[str] = []
        self.written: list[tuple[str | None, str]] = []  # (line typed before, output)

    def read(self, prompt: str) -> str:
        self.prompts.append(prompt)
        try:
            self._typed = next(self._lines)
        except StopIteration:
            self._typed = None
            raise EOFError from None
        return self._typed

    def write(self, output: str) -> None:
        self.written.append((self._typed, output))

    def after(self, typed: str) -> str:
        """Everything written in answer to the last time ``typed`` was entered."""
        outputs = [out for line, out in self.written if line == typed]
        assert outputs, f"nothing was written after {typed!r}"
        return outputs[-1]

    @property
    def welcome(self) -> str:
        return self.written[0][1]

    @property
    def everything(self) -> str:
        return "\n".join(out for _, out in self.written)


def chat(open_stack: StackFactory, lines: Iterable[str]) -> Script:
    stack = open_stack()
    script = Script(lines)
    run_console(
        stack.service,
        external_id=USER,
        display_name="测试用户",
        read=script.read,
        write=script.write,
    )
    return script


RISK_REPORT = [
    "/report",
    "张三",
    BAD_ID,
    VALID_ID,
    "13812345678",
    "大塘埠镇",
    "长岭村",
    "4",
    "2",  # 户类型 by its number: 监测户
    "+1",  # toggle 因病
    "+4",  # toggle 因灾
    "完成",
    "今年3月父亲住院做手术，花费较大，家里收入减少。",
    "3000",
    "是",
]


def test_scripted_session_question_report_edit_confirm(
    open_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger at DEBUG, including SQLAlchemy's (which logs statements and result rows).
    for name in ["", *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    script = chat(
        open_stack,
        [
            "监测对象识别认定一般不超过多少天？",
            "/more",
            *RISK_REPORT,
            "改 3",
            "13912345678",
            "确认提交",
            "/mycases",
            "/quit",
        ],
    )
    assert "/report" in script.welcome and "/more" in script.welcome
    assert script.prompts[0] == PROMPT

    answer = script.after("监测对象识别认定一般不超过多少天？")
    assert "15天" in answer
    assert "出处：《测试县2024年防返贫工作要点》（测巩字〔2024〕1号）" in answer
    assert "帮扶计划" in script.after("/more")  # the other passage, with its citation

    assert "姓名" in script.after("/report")
    assert "校验位" in script.after(BAD_ID)
    assert "身份证号码" in script.after(BAD_ID)  # the same field asked again
    assert "手机号" in script.after(VALID_ID)
    # Choices come numbered exactly once; yes/no gets numbers the engine understands.
    household = script.after("4")
    assert household.count("1. 脱贫户") == 1 and "2. 监测户" in household
    risks = script.after("2")
    assert TOGGLE_HINT in risks and "13. 其他" in risks
    assert "已选：因病。" in script.after("+1")
    assert "已选：因病、因灾。" in script.after("+4")
    assert "1. 是  2. 否" in script.after("3000")

    summary = script.after("是")
    assert "2. 身份证号：3601**********" + VALID_ID[-4:] in summary
    assert "7. 户类型：监测户" in summary
    assert "8. 风险类型：因病、因灾" in summary
    assert "1. 确认提交" not in summary  # "1" in the summary means "edit field 1"
    assert "当前填写：13812345678" in script.after("改 3")
    assert "3. 手机号：13912345678" in script.after("13912345678")

    confirmation = script.after("确认提交")
    match = CASE_NUMBER.search(confirmation)
    assert match is not None, confirmation
    number = match.group(0)
    assert "2026年05月27日" in confirmation
    assert number in script.after("/mycases")
    assert script.written[-1] == ("/quit", GOODBYE)

    # The case is in the database, filed for this console user, due 15 days after filing.
    stack = open_stack()
    with stack.database.unit_of_work() as uow:
        case = uow.cases.get(number)
        user = uow.users.find("console", USER)
    assert case is not None and user is not None
    assert case.status == "已受理"
    assert case.due_dates == {"识别认定": date(2026, 5, 27)}
    assert case.submitter_id == user.id and user.role is Role.FARMER
    assert case.fields["id_number"] == VALID_ID
    assert case.fields["mobile"] == "13912345678"
    assert case.fields["household_type"] == "监测户"
    assert case.fields["risk_types"] == ["因病", "因灾"]
    with stack.database.engine.connect() as connection:
        logged = connection.execute(text("SELECT inbound_text, reply_text FROM exchanges")).all()
        dialogs = connection.execute(text("SELECT count(*) FROM dialog_states")).scalar_one()
    assert dialogs == 0

    # The full ID number is nowhere but in the case itself: not in the console output
    # (the user typed it, the console never echoes it), not in the exchange log, not in
    # any log record at DEBUG.
    for secret in (VALID_ID, BAD_ID):
        assert secret not in script.everything
        assert all(secret not in row.inbound_text + row.reply_text for row in logged)
        assert secret not in caplog.text
        assert all(secret not in record.getMessage() for record in caplog.records)
    # The check above saw real traffic: result rows holding the ID were logged (masked).
    assert any(
        r.name == "sqlalchemy.engine.Engine" and "3601**********" in r.getMessage()
        for r in caplog.records
    )


def test_restart_mid_form_resumes_at_the_same_field(open_stack: StackFactory) -> None:
    first = chat(open_stack, RISK_REPORT[:5])  # name, bad ID, ID, mobile; then end of input
    assert "乡（镇）" in first.after("13812345678")
    assert first.written[-1] == (None, "\n" + GOODBYE)

    # A new process: every object built anew from the same data dir.
    second = chat(open_stack, [*RISK_REPORT[5:], "确认提交", "/quit"])
    assert "您正在填写《防返贫风险自主申报》，请继续：\n（4/11）请输入您所在的乡（镇）" in (
        second.welcome
    )
    assert "（5/11）" in second.after("大塘埠镇")
    confirmation = second.after("确认提交")
    assert CASE_NUMBER.search(confirmation) is not None, confirmation
    stack = open_stack()
    with stack.database.unit_of_work() as uow:
        page = uow.cases.list_cases(CaseQuery())
    (case,) = page.items
    assert case.fields["name"] == "张三"
    assert case.fields["id_number"] == VALID_ID
    assert case.fields["township"] == "大塘埠镇"


def test_subsidy_cancel_help_and_a_question_in_the_middle_of_a_form(
    open_stack: StackFactory,
) -> None:
    script = chat(
        open_stack,
        [
            "/subsidy",
            "帮扶计划多少天内制定？",
            "/help",
            "/cancel",
            "/cancel",
            "/mycases",
            "/quit",
        ],
    )
    assert "产业奖补" in script.after("/subsidy")
    mid_form = script.after("帮扶计划多少天内制定？")
    assert "10天内完成帮扶计划制定" in mid_form
    assert "您正在填写《产业奖补申请》，请继续" in mid_form
    help_text = script.after("/help")
    assert "/report" in help_text and "/more" in help_text and "/quit" in help_text
    assert "您正在填写《产业奖补申请》" in help_text
    assert "已取消《产业奖补申请》" in script.written[-4][1]
    assert "当前没有正在填写的申报" in script.written[-3][1]
    assert "还没有提交过申报" in script.after("/mycases")


BAD_LINES = [
    "   ",
    "/",
    "/nosuchcommand",
    "+99",
    "\x00\x1b[2J",
    "坏\ud800字",
    "😀" * 3,
    "字" * 5000,
    "/mycases FX-0000-000000",
    "/setstatus FX-2026-000001 已办结",
    "/case",
]


def test_bad_input_gets_a_polite_answer_never_a_traceback(
    open_stack: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Outside any form, then at the ID-number field of a form.
    script = chat(open_stack, [*BAD_LINES, "/report", "张三", *BAD_LINES, VALID_ID, "/quit"])
    replies = [out for line, out in script.written if line in BAD_LINES]
    assert len(replies) == 2 * (len(BAD_LINES) - 1)  # a blank line gets no answer
    assert "（3/11）" in script.after(VALID_ID), "the form went on after the bad input"
    assert "太长了（5000字）" in script.after("字" * 5000)
    assert "没有“/nosuchcommand”这个命令" in script.after("/nosuchcommand")
    assert "请输入申报人的18位居民身份证号码" in script.after("+99")
    assert script.written[-1] == ("/quit", GOODBYE)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err + script.everything
    assert "系统暂时出了点问题" not in script.everything
    assert "\ud800" not in script.everything


def test_more_before_any_answer_and_ctrl_c(open_stack: StackFactory) -> None:
    stack = open_stack()
    lines = iter(["/more"])
    written: list[str] = []

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise KeyboardInterrupt
        return line

    run_console(stack.service, read=read, write=written.append)
    assert "还没有可以展开的回答" in written[1]
    assert written[-1].endswith(GOODBYE)
