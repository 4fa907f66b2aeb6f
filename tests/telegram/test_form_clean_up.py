"""The clean-up job of a Telegram process deletes abandoned forms and tells their users."""

from __future__ import annotations

from datetime import timedelta

from cadrebot.handlers.ports import ConversationKey
from tests.support.forms import RISK_TYPED
from tests.support.telegram import Harness


async def test_an_abandoned_form_is_deleted_and_its_user_told(bot: Harness) -> None:
    farmer = bot.user(7001, "张三")
    farmer.say("/report")
    await farmer.expect("姓名")
    for answer in RISK_TYPED[:2]:  # the name, then the ID number
        farmer.say(answer)
        await farmer.expect("")
    services = bot.services
    key = ConversationKey("telegram", str(farmer.id))
    later = services.clock() + timedelta(minutes=services.settings.form_retention_minutes + 1)
    services.core._clock = lambda: later  # type: ignore[method-assign]

    [job] = bot.application.job_queue.get_jobs_by_name("form-clean-up")  # type: ignore[union-attr]
    await job.run(bot.application)
    told = await farmer.expect("已自动取消")
    assert "填写的内容已删除" in told["text"]
    with services.database.unit_of_work(read_only=True) as uow:
        assert uow.dialogs.load(key) is None
