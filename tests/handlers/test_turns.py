"""The conversation core's command registry and the structured output of a turn: what every
channel renders without parsing text or checking roles."""

from __future__ import annotations

import pytest

from cadrebot.handlers.commands import (
    ADMIN_ONLY,
    CADRE_ONLY,
    Command,
    CommandRegistry,
)
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.ports import (
    ActionKind,
    Citation,
    ConversationKey,
    Feedback,
    PolicyAnswer,
    UnitOfWork,
)
from cadrebot.handlers.turns import Inbound
from cadrebot.storage import CaseDatabase
from tests.support.clock import IDLE
from tests.support.conversation import (
    ADMIN,
    console_service,
    file_risk_report,
    make_cadre,
    turn,
)


@pytest.fixture
def service(database: CaseDatabase) -> ConversationService:
    return console_service(database)


# --------------------------------------------------------------------------- registry


def test_help_is_generated_from_the_registry_by_role(service: ConversationService) -> None:
    farmer = turn(service, "/help").text
    assert "/report" in farmer and "/ask 问题" in farmer and "/mycases" in farmer
    assert "/cases" not in farmer and "/kb" not in farmer and "干部命令" not in farmer
    make_cadre(service)
    cadre = turn(service, "/help", "cadre").text
    assert "干部命令：" in cadre and "/cases [状态]" in cadre and "/export" in cadre
    assert "管理员命令" not in cadre
    admin = turn(service, "/help", ADMIN).text
    assert "管理员命令：" in admin and "/invite 乡镇 [村]" in admin
    assert "/rate" not in admin  # what buttons send is not listed


def test_roles_are_checked_once_for_every_command(service: ConversationService) -> None:
    assert turn(service, "/cases").text == CADRE_ONLY
    assert turn(service, "/export").text == CADRE_ONLY
    assert turn(service, "/invite 大塘埠镇").text == ADMIN_ONLY
    assert turn(service, "/invites").text == ADMIN_ONLY
    make_cadre(service)
    assert turn(service, "/invites", "cadre").text == ADMIN_ONLY
    assert turn(service, "/overdue", "cadre").text.startswith("已逾期：")


def test_a_command_is_declared_once() -> None:
    registry = CommandRegistry([Command("help", "查看帮助", lambda call: None)])
    with pytest.raises(ValueError, match="twice"):
        registry.add(Command("help", "另一个帮助", lambda call: None))


def test_the_command_menu_comes_from_the_registry(service: ConversationService) -> None:
    names = [c.name for c in service.commands.menu()]
    assert names[:3] == ["start", "help", "ask"]
    assert {"report", "subsidy", "mycases", "cancel", "register"} <= set(names)
    assert "kb" not in names and "setstatus" not in names


# --------------------------------------------------------------------------- answers


def test_an_answer_carries_its_rating_and_sources_actions(service: ConversationService) -> None:
    result = turn(service, "识别认定要多少天？")
    answer = result.answer
    assert answer is not None and result.exchange_id is not None
    commands = {a.kind: a.command for a in answer.actions}
    assert commands[ActionKind.SOURCES] == f"/more {result.exchange_id}"
    assert f"/rate {result.exchange_id} up" in [a.command for a in answer.actions]


def test_rating_by_button_answers_with_a_toast_and_keeps_the_sources_button(
    service: ConversationService, database: CaseDatabase
) -> None:
    asked = turn(service, "识别认定要多少天？")
    rated = turn(service, f"/rate {asked.exchange_id} down", button=True)
    assert rated.replies == [] and rated.toast == "感谢您的反馈！"
    assert rated.origin_actions is not None
    assert [a.kind for a in rated.origin_actions] == [ActionKind.SOURCES]
    with database.unit_of_work(read_only=True) as uow:
        assert asked.exchange_id is not None
        logged = uow.exchanges.get(asked.exchange_id)
        assert logged is not None and logged.feedback is Feedback.DOWN
    # Another chat cannot rate it.
    assert turn(service, f"/rate {asked.exchange_id} up", "other").toast == "这条回答已无法评价。"


class CitingAnswerer:
    """Answers with two cited passages, as the knowledge base's composer does."""

    def answer(self, question: str) -> PolicyAnswer:
        cite = [
            Citation(f"文件{n}", f"赣字〔2023〕{n}号", f"第{n}条", f"第{n}段原文", 1.0 / n)
            for n in (1, 2)
        ]
        return PolicyAnswer(question, True, "一般不超过15天。", cite)


def test_more_sources_without_a_number_means_the_last_answer(database: CaseDatabase) -> None:
    service = ConversationService(database.unit_of_work, CitingAnswerer(), idle_timeout=IDLE)
    assert turn(service, "/more").text == "还没有可以展开的回答。请先提一个政策问题。"
    asked = turn(service, "识别认定要多少天？")
    more = "1. 《文件2》（赣字〔2023〕2号） › 第2条\n第2段原文"
    assert turn(service, "/more").text == more
    assert turn(service, f"/more {asked.exchange_id}", button=True).text == more
    assert turn(service, f"/more {asked.exchange_id}", "other").text.startswith("这条回答的出处")


class SuggestingAnswerer:
    """Answers with the next questions the composer suggests; remembers what was asked."""

    SUGGESTED = ("谁负责巩固住房安全保障？", "巩固饮水安全保障有什么要求？")
    TOO_LONG = "强化产业联农带农增收效益的具体要求是什么？"  # over a button's 16 characters

    def __init__(self) -> None:
        self.questions: list[str] = []

    def answer(self, question: str) -> PolicyAnswer:
        self.questions.append(question)
        cite = [Citation("文件1", "赣字〔2023〕1号", "第6条", "原文", 1.0)]
        suggestions = [*self.SUGGESTED, self.TOO_LONG]
        return PolicyAnswer(question, True, "加强住房安全动态监测。", cite, suggestions=suggestions)


def test_an_answer_carries_its_suggested_questions_as_ask_actions(
    database: CaseDatabase,
) -> None:
    answerer = SuggestingAnswerer()
    service = console_service(database, answerer)
    result = turn(service, "农房安全怎么保障？")
    assert result.suggestions == SuggestingAnswerer.SUGGESTED
    answer = result.answer
    assert answer is not None
    asks = [(a.label, a.command) for a in answer.actions if a.kind == ActionKind.NAVIGATE]
    assert asks == [(q, f"/ask {q}") for q in SuggestingAnswerer.SUGGESTED]
    # The rating and sources buttons stay first, under the answer.
    assert [a.kind for a in answer.actions[:3]] == [
        ActionKind.FEEDBACK,
        ActionKind.FEEDBACK,
        ActionKind.SOURCES,
    ]
    # Tapping one asks it.
    tapped = turn(service, asks[0][1], button=True)
    assert answerer.questions[-1] == SuggestingAnswerer.SUGGESTED[0] and tapped.answer is not None


def test_no_suggestions_inside_a_form_or_without_an_answer(database: CaseDatabase) -> None:
    service = console_service(database, SuggestingAnswerer())
    turn(service, "/report")
    in_form = turn(service, "/ask 农房安全怎么保障？")
    assert in_form.answer is not None and in_form.suggestions == ()
    assert all(a.kind != ActionKind.NAVIGATE for a in in_form.answer.actions)
    plain = console_service(database)  # the fake answerer suggests nothing
    assert turn(plain, "识别认定要多少天？", "other").suggestions == ()


# --------------------------------------------------------------------------- case desk


def test_a_case_view_offers_the_allowed_steps_as_actions(service: ConversationService) -> None:
    number = file_risk_report(service)
    make_cadre(service)
    view = turn(service, f"/case {number}", "cadre").replies[0]
    assert [(a.label, a.command, a.kind) for a in view.actions] == [
        ("改为：核实中", f"/setstatus {number} 核实中", ActionKind.STEP)
    ]
    assert turn(service, f"/case {number}").replies[0].actions == ()  # the farmer only reads


def test_moving_a_case_by_button_updates_its_view_and_tells_the_farmer(
    service: ConversationService,
) -> None:
    number = file_risk_report(service)
    make_cadre(service)
    moved = turn(service, f"/setstatus {number} 核实中", "cadre", button=True)
    view, outcome = moved.replies
    assert view.replaces_origin and "状态：核实中" in view.text
    assert outcome.text.startswith(f"案件 {number} 已改为“核实中”")
    [notice] = moved.notices
    assert notice.user.external_id == "farmer" and "核实中" in notice.text
    typed = turn(service, f"/setstatus {number} 已纳入监测", "cadre")
    assert [r.replaces_origin for r in typed.replies] == [False]


def test_a_step_needing_a_reason_asks_for_it_and_takes_the_reply(
    service: ConversationService, database: CaseDatabase
) -> None:
    number = file_risk_report(service)
    make_cadre(service)
    turn(service, f"/setstatus {number} 核实中", "cadre")
    [prompt] = turn(service, f"/setstatus {number} 不予纳入", "cadre", button=True).replies
    assert prompt.expects_reply
    done = turn(service, "收入稳定，无返贫风险", "cadre", replying_to=prompt.text)
    assert f"案件 {number} 已改为“不予纳入”" in done.text
    with database.unit_of_work(read_only=True) as uow:
        assert uow.cases.events(number)[-1].note == "收入稳定，无返贫风险"


def test_case_lists_page_by_actions(service: ConversationService) -> None:
    for n in range(6):
        file_risk_report(service, f"farmer{n}")
    make_cadre(service)
    first = turn(service, "/cases", "cadre").replies[0]
    assert "共 6 件" in first.text
    [following] = [a for a in first.actions if a.label == "下一页 ▶"]
    assert following.command == "/cases +5"
    second = turn(service, following.command, "cadre", button=True).replies[0]
    assert second.replaces_origin and "第 6-6 件" in second.text


def test_the_ledger_comes_back_as_a_file(service: ConversationService) -> None:
    file_risk_report(service)
    make_cadre(service)
    [ledger] = turn(service, "/export", "cadre").files
    assert ledger.file_name.endswith(".xlsx") and ledger.data.startswith(b"PK")
    assert ledger.caption == "案件台账：共 1 件。身份证号已脱敏。"


# --------------------------------------------------------------------------- receipts


class Receipt:
    def __init__(self) -> None:
        self.completed_in: UnitOfWork | None = None
        self.done = False

    def complete_in(self, uow: UnitOfWork) -> None:
        self.completed_in = uow

    def committed(self) -> None:
        self.done = True


def test_a_receipt_completes_in_the_turns_transaction(service: ConversationService) -> None:
    receipt = Receipt()
    service.turn(Inbound("console", "farmer", "张三", "/help"), receipt=receipt)
    assert receipt.completed_in is not None and receipt.done


def test_a_failed_turn_does_not_confirm_its_receipt(
    service: ConversationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = Receipt()

    def explode(self: object, key: ConversationKey) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr("cadrebot.storage.repositories.SqlDialogStateRepository.load", explode)
    result = service.turn(Inbound("console", "farmer", "张三", "/help"), receipt=receipt)
    assert "抱歉，系统暂时出了点问题" in result.text
    assert not receipt.done
