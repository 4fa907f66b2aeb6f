"""The two intake forms over Telegram, once typed and once by button presses."""

from __future__ import annotations

from cadrebot.handlers.ports import CaseQuery, Role
from tests.support.fake_telegram import FakeUser, button_labels
from tests.support.forms import RISK_TYPED, SUBSIDY_TYPED, VALID_ID
from tests.support.telegram import Harness


async def type_answers(user: FakeUser, answers: tuple[str, ...]) -> dict[str, object]:
    last: dict[str, object] = {}
    for answer in answers:
        user.say(answer)
        last = await user.expect("")
    return last


def cases_of(bot: Harness, user_id: int) -> list[object]:
    with bot.services.database.unit_of_work() as uow:
        user = uow.users.find("telegram", str(user_id))
        assert user is not None
        return list(uow.cases.list_cases(CaseQuery(submitter_id=user.id)).items)


async def test_risk_report_typed(bot: Harness) -> None:
    farmer = bot.user(2001, "张三")
    farmer.say("/report")
    await farmer.expect("姓名")
    summary = await type_answers(farmer, RISK_TYPED)
    assert "确认提交" in button_labels(summary)
    assert "3601**********" in summary["text"]  # the summary masks the ID number
    farmer.say("确认提交")
    filed = await farmer.expect("FX-")
    [case] = cases_of(bot, 2001)
    assert case.number in filed["text"]  # type: ignore[attr-defined]
    assert case.fields["risk_types"] == ["因病", "因灾"]  # type: ignore[attr-defined]
    assert case.fields["id_number"] == VALID_ID  # type: ignore[attr-defined]


async def test_risk_report_by_buttons_with_checkmarks(bot: Harness) -> None:
    farmer = bot.user(2002, "王五")
    farmer.say("/report")
    await farmer.expect("姓名")
    await type_answers(farmer, RISK_TYPED[:5])
    farmer.say("4")
    household = await farmer.expect("哪一类")
    assert button_labels(household) == ["脱贫户", "监测户", "一般农户"]
    farmer.press(household, "监测户")
    risks = await farmer.expect("主要风险")
    assert bot.server.messages[household["message_id"]].get("reply_markup") is None  # spent

    farmer.press(risks, "因病")
    edited = await farmer.expect_edit(risks, "已选：因病")
    assert "✓ 因病" in button_labels(edited)
    assert "因灾" in button_labels(edited)
    farmer.press(edited, "因灾")
    edited = await farmer.expect_edit(risks, "已选：因病、因灾")
    assert {"✓ 因病", "✓ 因灾"} <= set(button_labels(edited))
    assert "主要风险" in edited["text"]  # the question stays on the message
    farmer.press(edited, "因灾")  # untick
    edited = await farmer.expect_edit(risks, "已选：因病。")
    assert "✓ 因灾" not in button_labels(edited)
    farmer.press(edited, "完成")

    await farmer.expect("困难")
    farmer.say("家里老人重病住院，花了不少钱。")
    loss = await farmer.expect("多少元")
    farmer.press(loss, "跳过")
    consent = await farmer.expect("同意核实")
    farmer.press(consent, "是")
    summary = await farmer.expect("确认提交")
    farmer.press(summary, "确认提交")
    await farmer.expect("FX-")
    [case] = cases_of(bot, 2002)
    assert case.fields["risk_types"] == ["因病"]  # type: ignore[attr-defined]
    assert case.fields["household_type"] == "监测户"  # type: ignore[attr-defined]
    assert case.fields.get("estimated_loss") is None  # type: ignore[attr-defined]


async def test_subsidy_typed(bot: Harness) -> None:
    farmer = bot.user(2003, "李四")
    farmer.say("/subsidy")
    await farmer.expect("哪一类")
    summary = await type_answers(farmer, SUBSIDY_TYPED)
    assert "确认提交" in button_labels(summary)
    farmer.say("确认提交")
    await farmer.expect("JB-")
    [case] = cases_of(bot, 2003)
    assert case.fields["product"] == "脐橙"  # type: ignore[attr-defined]


async def test_subsidy_by_buttons(bot: Harness) -> None:
    farmer = bot.user(2004, "赵六")
    farmer.say("/subsidy")
    first = await farmer.expect("哪一类")
    farmer.press(first, "脱贫户")
    await farmer.expect("姓名")
    await type_answers(farmer, SUBSIDY_TYPED[1:5])
    farmer.say("长岭村")
    industry = await farmer.expect("哪类产业")
    farmer.press(industry, "养殖")
    await farmer.expect("具体")
    farmer.say("生猪")
    await farmer.expect("规模")
    farmer.say("20")
    unit = await farmer.expect("单位")
    farmer.press(unit, "头")
    await farmer.expect("投入")
    farmer.say("30000")
    disaster = await farmer.expect("受过灾")
    farmer.press(disaster, "否")
    summary = await farmer.expect("确认提交")
    farmer.press(summary, "确认提交")
    await farmer.expect("JB-")
    [case] = cases_of(bot, 2004)
    assert case.fields["industry_type"] == "养殖"  # type: ignore[attr-defined]
    assert case.fields["scale_unit"] == "头"  # type: ignore[attr-defined]


async def test_ineligible_applicant_is_told_politely(bot: Harness) -> None:
    farmer = bot.user(2005, "钱七")
    farmer.say("/subsidy")
    first = await farmer.expect("哪一类")
    farmer.press(first, "一般农户")
    reply = await farmer.expect("很抱歉")
    assert "/report" in reply["text"]
    assert cases_of(bot, 2005) == []


async def test_question_in_the_middle_of_a_form_with_ask(bot: Harness) -> None:
    farmer = bot.user(2006, "孙八")
    farmer.say("/report")
    await farmer.expect("姓名")
    farmer.say("/ask 监测对象识别认定一般不超过多少天？")
    answer = await farmer.expect("15天")
    assert "👍 有帮助" in button_labels(answer)
    await farmer.expect("请继续")
    farmer.say("孙八")  # the form carries on where it was
    await farmer.expect("身份证")
    with bot.services.database.unit_of_work() as uow:
        user = uow.users.find("telegram", "2006")
    assert user is not None and user.role is Role.FARMER


async def test_cancel(bot: Harness) -> None:
    farmer = bot.user(2007, "周九")
    farmer.say("/report")
    await farmer.expect("姓名")
    farmer.say("/cancel")
    await farmer.expect("已取消")
    farmer.say("/cancel")
    await farmer.expect("没有正在填写")
