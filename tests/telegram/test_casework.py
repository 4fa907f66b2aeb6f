"""The cadre case desk: lists, buttons for transitions, reasons, farmer notified, export."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from openpyxl import load_workbook

from cadrebot.handlers.places import PlaceRegister
from cadrebot.handlers.ports import Role
from tests.support.fake_telegram import FakeUser, button_labels
from tests.support.forms import RISK_TYPED, SUBSIDY_TYPED, VALID_ID
from tests.support.telegram import Harness


async def file_case(bot: Harness, user: FakeUser, command: str, answers: tuple[str, ...]) -> str:
    """File a case through the conversation service (fast; the forms have their own tests)."""
    handle = bot.services.core.handle
    for text in (command, *answers):
        await asyncio.to_thread(handle, "telegram", str(user.id), user.first_name, text)
    replies = await asyncio.to_thread(handle, "telegram", str(user.id), user.first_name, "确认提交")
    text = replies[-1].text
    start = text.index("FX-" if command == "/report" else "JB-")
    return text[start : start + 14]


def make_cadre(bot: Harness, user: FakeUser, township: str, village: str | None) -> None:
    with bot.services.database.unit_of_work() as uow:
        record = uow.users.get_or_create("telegram", str(user.id), user.first_name)
        # The test knowledge folder has no places.toml: the bot's register is open.
        place = PlaceRegister().resolve(township, village)
        assert place is not None
        uow.users.set_role(
            record.id,
            Role.CADRE,
            place.township,
            place.village,
            township_id=place.township_id,
            village_id=place.village_id,
        )
        uow.commit()


async def test_cadre_works_a_case_by_buttons_and_the_farmer_is_told(bot: Harness) -> None:
    farmer = bot.user(5001, "张三")
    number = await file_case(bot, farmer, "/report", RISK_TYPED)
    cadre = bot.user(5002, "刘干部")
    make_cadre(bot, cadre, "大塘埠镇", None)

    cadre.say("/cases")
    listing = await cadre.expect("共 1 件")
    assert button_labels(listing) == [f"查看 {number}"]
    cadre.press(listing, f"查看 {number}")
    view = await cadre.expect(f"案件 {number}")
    assert VALID_ID not in view["text"] and "3601**********" in view["text"]
    assert button_labels(view) == ["改为：核实中"]

    cadre.press(view, "改为：核实中")
    await cadre.expect("已改为“核实中”")
    edited = await cadre.expect_edit(view, "状态：核实中")
    assert button_labels(edited) == ["改为：已纳入监测", "改为：不予纳入（需填理由）"]
    told = await farmer.expect("办理状态已更新为：核实中")
    assert number in told["text"]

    cadre.press(edited, "改为：不予纳入（需填理由）")
    prompt = await cadre.expect("理由")
    assert prompt["x_requested_markup"]["force_reply"] is True
    cadre.say("经入户核实，家庭收入稳定，不符合纳入条件。", reply_to=prompt)
    await cadre.expect("已改为“不予纳入”")
    told = await farmer.expect("不予纳入")
    assert "家庭收入稳定" in told["text"]

    cadre.say(f"/case {number}")
    final = await cadre.expect("办理记录")
    assert "核实中 → 不予纳入" in final["text"]
    assert button_labels(final) == []


async def test_other_jurisdiction_cannot_see_or_move_the_case(bot: Harness) -> None:
    farmer = bot.user(5011, "张三")
    number = await file_case(bot, farmer, "/report", RISK_TYPED)
    outsider = bot.user(5012, "外乡干部")
    make_cadre(bot, outsider, "安西镇", None)
    outsider.say(f"/case {number}")
    await outsider.expect("没有找到编号")
    outsider.say(f"/setstatus {number} 核实中")
    await outsider.expect("没有找到编号")
    outsider.say("/cases")
    await outsider.expect("没有找到案件")


async def test_typed_transition_with_reason_and_paged_list(bot: Harness) -> None:
    farmer = bot.user(5021, "张三")
    numbers = [await file_case(bot, farmer, "/report", RISK_TYPED) for _ in range(6)]
    cadre = bot.user(5022, "刘干部")
    make_cadre(bot, cadre, "大塘埠镇", "长岭村")
    cadre.say("/cases 已受理")
    first = await cadre.expect("共 6 件，第 1-5 件")
    assert "下一页 ▶" in button_labels(first)
    cadre.press(first, "下一页 ▶")
    second = await cadre.expect_edit(first, "第 6-6 件")
    assert button_labels(second) == [f"查看 {numbers[0]}", "◀ 上一页"]

    cadre.say(f"/setstatus {numbers[0]} 已纳入监测")
    await cadre.expect("不能改为“已纳入监测”")
    cadre.say(f"/setstatus {numbers[0]} 核实中")
    await cadre.expect("已改为“核实中”")
    cadre.say(f"/setstatus {numbers[0]} 不予纳入")
    await cadre.expect("必须填写理由")
    cadre.say("/cases 没这个状态")
    await cadre.expect("没有“没这个状态”这个状态")


async def test_export_masks_ids_for_cadres_not_for_admins(bot: Harness) -> None:
    farmer = bot.user(5031, "张三")
    risk_number = await file_case(bot, farmer, "/report", RISK_TYPED)
    subsidy_number = await file_case(bot, farmer, "/subsidy", SUBSIDY_TYPED)
    cadre = bot.user(5032, "刘干部")
    make_cadre(bot, cadre, "大塘埠镇", None)

    cadre.say("/export")
    await cadre.expect("案件台账：共 2 件")
    document = bot.server.documents[-1]
    assert document.file_name.endswith(".xlsx") and "大塘埠镇" in document.file_name
    workbook = load_workbook(io.BytesIO(document.data))
    assert workbook.sheetnames == ["防返贫风险申报", "产业奖补申请"]
    risk = workbook["防返贫风险申报"]
    header = [c.value for c in risk[1]]
    row = dict(zip(header, [c.value for c in risk[2]], strict=True))
    assert row["案件编号"] == risk_number
    assert row["状态"] == "已受理"
    assert row["风险类型"] == "因病、因灾"
    id_column = next(h for h in header if h and "身份证" in h)
    assert row[id_column] == VALID_ID[:4] + "*" * 10 + VALID_ID[-4:]
    assert "期限·识别认定" in header
    subsidy = workbook["产业奖补申请"]
    assert subsidy.cell(row=2, column=1).value == subsidy_number
    for sheet in workbook.worksheets:
        for line in sheet.iter_rows(values_only=True):
            assert VALID_ID not in [str(v) for v in line]

    admin = bot.admin()
    admin.say("/export")
    await admin.expect("案件台账：共 2 件")
    workbook = load_workbook(io.BytesIO(bot.server.documents[-1].data))
    risk = workbook["防返贫风险申报"]
    header = [c.value for c in risk[1]]
    assert risk.cell(row=2, column=header.index(id_column) + 1).value == VALID_ID


async def test_daily_reminder_and_overdue(bot: Harness) -> None:
    farmer = bot.user(5041, "张三")
    number = await file_case(bot, farmer, "/report", RISK_TYPED)
    cadre = bot.user(5042, "刘干部")
    make_cadre(bot, cadre, "大塘埠镇", None)
    elsewhere = bot.user(5043, "外乡干部")
    make_cadre(bot, elsewhere, "安西镇", None)
    admin = bot.admin()
    admin.say("/start")
    await admin.expect("/kb")

    cadre.say("/overdue")
    digest = await cadre.expect("已逾期：无")
    assert number not in digest["text"]  # 15 days to identification: not due soon yet

    # Move the clock forward: the identification deadline is two days away.
    services = bot.services
    later = services.clock() + timedelta(days=13)
    services.core._desk._clock = lambda: later  # type: ignore[method-assign]

    [job] = bot.application.job_queue.get_jobs_by_name("daily-due-reminder")  # type: ignore[union-attr]
    await job.run(bot.application)
    reminder = await cadre.expect("每日提醒")
    assert number in reminder["text"] and "剩2天" in reminder["text"]
    await admin.expect("每日提醒")  # admins see every jurisdiction
    await asyncio.sleep(0.2)
    assert elsewhere.messages() == []
