"""Webhook mode with the secret token, the flood guard, and the error handler."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import ClientSession

from cadrebot.bot.telegram import WebhookConfig, build_application, serving
from cadrebot.bot.telegram.flood import FLOOD_WARNING
from cadrebot.bot.telegram.routing import RETRY
from cadrebot.bot.telegram.services import TelegramServices, build_services
from tests.support.fake_telegram import FakeTelegram, free_port
from tests.support.knowledge import Parts, knowledge_for
from tests.support.settings import make_settings
from tests.support.telegram import Harness

SECRET = "s3cret_Token-42"


async def test_webhook_mode_checks_the_secret(
    server: FakeTelegram, services: TelegramServices
) -> None:
    port = free_port()
    hook = WebhookConfig(
        listen="127.0.0.1",
        port=port,
        url_path="tg-hook",
        webhook_url=f"http://127.0.0.1:{port}/tg-hook",
        secret_token=SECRET,
    )
    application = build_application(services)
    async with serving(application, webhook=hook):
        assert server.webhook == {"url": hook.webhook_url, "secret_token": SECRET}
        farmer = server.user(6001, "张三")
        farmer.say("监测对象识别认定一般不超过多少天？")  # the fake server POSTs it
        await farmer.expect("15天")
        assert server.webhook_deliveries == [200]
        assert server.get_updates_calls == 0

        forged = {
            "update_id": 999,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 6002, "type": "private"},
                "from": {"id": 6002, "is_bot": False, "first_name": "冒充者"},
                "text": "/start",
            },
        }
        async with ClientSession() as http:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
                async with http.post(hook.webhook_url, json=forged, headers=headers) as resp:
                    assert resp.status == 403
        assert server.chat_messages(6002) == []


def test_webhook_mode_needs_url_and_secret(tmp_path: Any) -> None:
    from cadrebot.bot.telegram import ConfigurationError

    settings = make_settings(tmp_path, tmp_path, telegram_webhook_url="https://example.org/tg")
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        WebhookConfig.from_settings(settings)
    settings = make_settings(tmp_path, tmp_path, telegram_webhook_secret="x")
    with pytest.raises(ConfigurationError, match="WEBHOOK_URL"):
        WebhookConfig.from_settings(settings)


async def test_flood_guard_warns_once_then_drops(
    server: FakeTelegram, bot_dirs: Any, parts: Parts, database_url: str
) -> None:
    from tests.support.telegram import running

    data_dir, knowledge_dir = bot_dirs
    settings = make_settings(
        data_dir,
        knowledge_dir,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        database_url=database_url,
        flood_max_messages=3,
        flood_window_seconds=60,
    )
    with build_services(settings, knowledge=knowledge_for(settings, parts)) as services:
        async with running(server, services):
            farmer = server.user(6101, "刷屏")
            for _ in range(3):
                farmer.say("/help")
                await farmer.expect("可用的命令")
                farmer.skip_all()
            farmer.say("/help")
            await farmer.expect(FLOOD_WARNING)
            farmer.say("/help")
            farmer.say("/start")
            other = server.user(6102, "别人")
            other.say("/help")  # the limit is per user
            await other.expect("可用的命令")
            await server.wait_until(lambda: server.acked_offset > 6)
            assert [m["text"] for m in farmer.messages()].count(FLOOD_WARNING) == 1
            assert not any("您好" in m["text"] for m in farmer.messages())


async def test_a_failing_update_is_logged_masked_and_the_bot_carries_on(
    bot: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken while reading 360121199001011239")

    # The core answers its own failures with an apology; this one breaks in the channel.
    monkeypatch.setattr(bot.services.core, "turn", explode)
    cadre = bot.admin()
    with caplog.at_level(logging.ERROR, logger="cadrebot.bot.telegram.routing"):
        update_id = cadre.say("/overdue")
        await cadre.expect(RETRY)
    [record] = [r for r in caplog.records if "failed" in r.getMessage()]
    text = record.getMessage()
    assert f"update {update_id} failed" in text
    assert "RuntimeError" in text
    assert "360121199001011239" not in text and "3601**********1239" in text
    monkeypatch.undo()
    cadre.say("监测对象识别认定一般不超过多少天？")
    await cadre.expect("15天")
