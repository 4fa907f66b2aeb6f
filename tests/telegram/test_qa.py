"""Policy Q&A over Telegram: cited answers, 👍/👎 stored on the exchange, 更多出处."""

from __future__ import annotations

from cadrebot.handlers.ports import ConversationKey, Feedback
from cadrebot.handlers.qa import QUESTION_KINDS
from tests.support.fake_telegram import button_labels
from tests.support.telegram import Harness


async def test_question_gets_a_cited_answer_with_feedback_buttons(bot: Harness) -> None:
    farmer = bot.user(1001, "张三")
    farmer.say("监测对象识别认定一般不超过多少天？")
    answer = await farmer.expect("15天")
    assert "出处" in answer["text"]
    assert "赣党农字〔2023〕2号" in answer["text"]
    labels = button_labels(answer)
    assert labels[:3] == ["👍 有帮助", "👎 没帮助", "更多出处"]
    suggested = labels[3:]  # next questions (追问) from the cited item's section
    assert 1 <= len(suggested) <= 3 and all(q.endswith("？") for q in suggested)

    farmer.press(answer, "👎 没帮助")
    await bot.server.wait_until(
        lambda: button_labels(bot.server.messages[answer["message_id"]]) == ["更多出处"]
    )
    assert any(a.get("text") == "感谢您的反馈！" for a in bot.server.callback_answers)
    with bot.services.database.unit_of_work() as uow:
        logged = uow.exchanges.latest(ConversationKey("telegram", "1001"), QUESTION_KINDS)
    assert logged is not None
    assert logged.feedback is Feedback.DOWN
    assert logged.exchange.found is True

    farmer.press(answer, "更多出处")
    more = await farmer.expect("《")
    assert more["message_id"] != answer["message_id"]


async def test_a_suggested_question_is_asked_by_its_button(bot: Harness) -> None:
    farmer = bot.user(1003, "王五")
    farmer.say("监测对象识别认定一般不超过多少天？")
    answer = await farmer.expect("15天")
    suggested = button_labels(answer)[3]
    farmer.press(answer, suggested)
    follow = await farmer.expect("出处")
    assert follow["message_id"] != answer["message_id"]


async def test_unanswerable_question_says_so(bot: Harness) -> None:
    farmer = bot.user(1002, "李四")
    farmer.say("北京市的公积金贷款利率是多少？")
    reply = await farmer.expect("没有找到")
    assert "12317" in reply["text"]
