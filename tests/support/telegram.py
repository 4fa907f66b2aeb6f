"""The real python-telegram-bot application against :class:`FakeTelegram`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cadrebot.bot.telegram import build_application, serving
from cadrebot.bot.telegram.app import AnyApplication
from cadrebot.bot.telegram.services import TelegramServices
from cadrebot.settings import Settings

from .fake_telegram import FakeTelegram, FakeUser
from .settings import ADMIN_ID


@dataclass
class Harness:
    server: FakeTelegram
    services: TelegramServices
    settings: Settings
    application: AnyApplication

    def user(self, user_id: int, name: str = "用户") -> FakeUser:
        return self.server.user(user_id, name)

    def admin(self) -> FakeUser:
        return self.server.user(ADMIN_ID, "管理员")


@asynccontextmanager
async def running(server: FakeTelegram, services: TelegramServices) -> AsyncIterator[Harness]:
    """The real application, long polling the fake server, until the block exits."""
    application = build_application(services)
    server.stopping = False
    async with serving(application, poll_timeout=5):
        await server.wait_until(lambda: server.get_updates_calls > 0)
        try:
            yield Harness(server, services, services.settings, application)
        finally:
            # Stopping the updater waits for its pending long poll: end polls at once.
            server.stopping = True
            server.wake()
