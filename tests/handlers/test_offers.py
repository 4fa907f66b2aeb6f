"""The form behind the question: the shipped offers.toml offers /report for a hardship
described in everyday words and /subsidy for 奖补 asked as a 脱贫户/监测户; the conversation
puts the offer on the answer, found or not, and not in the middle of a form."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.offers import OfferBook
from cadrebot.handlers.ports import ActionKind
from cadrebot.indexer.offers_file import OffersFileError, load_offers, offers_path
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at

SHIPPED = load_offers(offers_path(Path(__file__).parents[2] / "knowledge"))


@pytest.mark.parametrize(
    "message",
    [
        "我爸住院了，花了好几万，家里拿不出钱",
        "孩子得了白血病，治病的钱怎么办？",
        "老婆做手术，医药费太贵了",
        "上个月发大水，家里的田全淹了",
        "今年干旱，稻子全死了，怎么办",
        "台风把我家房顶掀了",
        "后山滑坡，房子塌了一半",
        "家里着火了，东西都烧没了",
        "下冰雹把果树打坏了，我们家损失很大",
        "我男人出车祸了，腿断了",
        "儿子在工地摔伤，现在残疾了",
        "老人中风瘫痪在床",
        "厂子倒闭了，我没活干了",
        "今年收成不好，一家人怎么过",
        "我家养的猪死了一大半",
        "村里鸡瘟，我的鸡全没了",
        "孩子上大学学费交不起",
        "我家房子漏雨，墙都裂了",
        "我们家吃水难，井干了",
    ],
)
def test_hardships_offer_the_risk_report(message: str) -> None:
    assert SHIPPED.commands(message) == ["/report"]


@pytest.mark.parametrize(
    "message",
    [
        "医保住院报销比例是多少？",  # asks about a topic, describes no hardship
        "自然灾害风险怎么防范？",
        "监测对象识别认定一般不超过多少天？",
        "信丰县产业奖补什么时候申请？",
        "光伏电站的收益怎么管？",
    ],
)
def test_questions_about_a_topic_offer_nothing(message: str) -> None:
    assert SHIPPED.commands(message) == []


@pytest.mark.parametrize(
    "message",
    [
        "我是监测户，种脐橙能拿奖补吗？",
        "脱贫户养牛有没有补助",
        "我们家是脱贫户，想种菜，有什么扶持资金",
    ],
)
def test_subsidy_asked_as_a_poor_household(message: str) -> None:
    assert "/subsidy" in SHIPPED.commands(message)


def test_subsidy_needs_the_household() -> None:
    assert SHIPPED.commands("养鸡有补贴吗？") == []


def test_offers_are_start_actions_one_per_command() -> None:
    actions = SHIPPED.actions("家里发大水，房子塌了，我爸还摔伤住院了")
    assert [(a.label, a.command, a.kind) for a in actions] == [
        ("立即申报", "/report", ActionKind.START)
    ]


def test_loader_errors_are_explained(tmp_path: Path) -> None:
    assert load_offers(tmp_path / "missing.toml").offers == ()
    broken = tmp_path / "offers.toml"
    broken.write_text('[[offer]]\ncategory = "x"\ncommand = "report"\n', encoding="utf-8")
    with pytest.raises(OffersFileError, match="/"):
        load_offers(broken)
    broken.write_text(
        '[[offer]]\ncategory = "x"\ncommand = "/report"\nlabel = "申报"\n'
        'phrases = ["病"]\nrequires = ["nobody"]\n',
        encoding="utf-8",
    )
    with pytest.raises(OffersFileError, match="nobody"):
        load_offers(broken)
    broken.write_text("[[offer]\n", encoding="utf-8")
    with pytest.raises(OffersFileError, match="格式有误"):
        load_offers(broken)


# ------------------------------------------------------------------ in the conversation


def core(database: CaseDatabase, offers: OfferBook = SHIPPED) -> ConversationService:
    return ConversationService(
        database.unit_of_work,
        FakeAnswerer(),
        clock=FixedClock(at(2026, 5, 12)),
        idle_timeout=IDLE,
        offers=offers,
    )


def started(service: ConversationService, text: str, user: str = "u1") -> list[str]:
    result = service.handle_turn("console", user, "老乡", text)
    return [a.command for r in result.replies for a in r.actions if a.kind is ActionKind.START]


def test_the_answer_offers_the_form_even_when_not_found(database: CaseDatabase) -> None:
    service = core(database)
    result = service.handle_turn("console", "u1", "老乡", "家里遭了水灾，日子过不下去了")
    answer = result.answer
    assert answer is not None and answer.actions[0].command == "/report"
    # The answer keeps its own buttons after the offer.
    assert {a.kind for a in answer.actions} >= {ActionKind.FEEDBACK, ActionKind.SOURCES}
    assert started(service, "/ask 我男人出车祸瘫痪了怎么办") == ["/report"]


def test_no_offer_inside_a_form_or_without_offers(database: CaseDatabase) -> None:
    service = core(database)
    service.handle("console", "u1", "老乡", "/report")
    assert started(service, "/ask 我爸住院了怎么办") == []
    assert started(core(database, OfferBook()), "我爸住院了怎么办", user="u2") == []
