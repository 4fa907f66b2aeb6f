"""The python-telegram-bot Application: built from settings, run by long polling (through the
inbox, :mod:`cadrebot.bot.telegram.polling`) or webhook."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import AIORateLimiter, ApplicationBuilder

from cadrebot.bot.telegram.jobs import TelegramJobs
from cadrebot.bot.telegram.routing import AnyApplication, TelegramRouter
from cadrebot.bot.telegram.services import TelegramServices, build_services
from cadrebot.bot.telegram.transport import AiohttpRequest
from cadrebot.bot.telegram.uploads import UploadHandler
from cadrebot.bot.wiring import Knowledge
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)

NO_TOKEN = (
    "未设置 Telegram 机器人令牌：请设置环境变量 TELEGRAM_BOT_TOKEN"
    "（或 CADREBOT_TELEGRAM_BOT_TOKEN）"
    "后再运行 `cadrebot run`。\n没有令牌也可以先在终端里使用：`cadrebot chat`。"
)


class ConfigurationError(ValueError):
    """The settings do not allow starting the bot; the message is Chinese and says what to set."""


@dataclass(frozen=True)
class WebhookConfig:
    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        if not settings.telegram_webhook_url:
            raise ConfigurationError(
                "Webhook 模式需要设置 CADREBOT_TELEGRAM_WEBHOOK_URL"
                "（Telegram 推送更新的公网 HTTPS 地址）。"
            )
        if settings.telegram_webhook_secret is None:
            raise ConfigurationError(
                "Webhook 模式需要设置 CADREBOT_TELEGRAM_WEBHOOK_SECRET"
                "（1-256 位字母、数字、_ 或 -），"
                "用于校验每个请求确实来自 Telegram。"
            )
        return cls(
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            url_path=settings.telegram_webhook_path.strip("/"),
            webhook_url=settings.telegram_webhook_url,
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
        )


def bot_token(settings: Settings) -> str | None:
    """The configured token, or None when unset or blank."""
    token = settings.telegram_bot_token
    value = token.get_secret_value().strip() if token is not None else ""
    return value or None


def api_urls(api_url: str) -> tuple[str, str]:
    """(base_url, base_file_url) for a Bot API server root such as ``http://127.0.0.1:8081``."""
    root = api_url.rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"


def build_application(services: TelegramServices) -> AnyApplication:
    """The PTB application: routing, uploads and jobs wired to the conversation core."""
    settings = services.settings
    token = bot_token(settings)
    if token is None:
        raise ConfigurationError(NO_TOKEN)
    core, hooks = services.core, services.hooks
    router = TelegramRouter(core, settings, receipts=hooks.receipts or (lambda _: None))
    uploads = UploadHandler(core, router)
    jobs = TelegramJobs(
        core,
        services.admin,
        settings,
        clock=services.clock,
        loaded_version=lambda: services.knowledge.searcher.loaded_version,
        claim_job=hooks.claim_job,
        on_index_loaded=hooks.on_index_loaded,
    )
    menu = [BotCommand(c.name, c.summary) for c in core.commands.menu()]

    async def post_init(application: AnyApplication) -> None:
        await application.bot.set_my_commands(menu)
        jobs.schedule(application)

    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(token)
        .concurrent_updates(settings.telegram_concurrent_updates)
        .post_init(post_init)
        .request(AiohttpRequest(connection_pool_size=settings.telegram_concurrent_updates * 2))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
    )
    if settings.telegram_api_url:
        base_url, base_file_url = api_urls(settings.telegram_api_url)
        builder = builder.base_url(base_url).base_file_url(base_file_url)
    if settings.telegram_rate_limit > 0:
        builder = builder.rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.telegram_rate_limit,
                overall_time_period=1,
                max_retries=3,  # a 429 RetryAfter is waited out and retried, not dropped
            )
        )
    application: AnyApplication = builder.build()
    uploads.register(application)  # before the router's catch-all for non-text messages
    router.register(application)
    return application


@asynccontextmanager
async def serving(
    application: AnyApplication,
    *,
    webhook: WebhookConfig | None = None,
    poll_timeout: float = 10.0,
) -> AsyncIterator[AnyApplication]:
    """Run the application inside the current event loop until the block exits.

    What PTB's ``run_polling``/``run_webhook`` do, without owning the loop (tests,
    embedding). Not durable: PTB's Updater confirms updates before they are processed, so a
    killed process loses them; ``cadrebot run`` polls through the inbox instead
    (:mod:`cadrebot.bot.telegram.polling`).
    """
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        updater = application.updater
        assert updater is not None
        if webhook is not None:
            await updater.start_webhook(
                listen=webhook.listen,
                port=webhook.port,
                url_path=webhook.url_path,
                webhook_url=webhook.webhook_url,
                secret_token=webhook.secret_token,
                allowed_updates=list(ALLOWED_UPDATES),
            )
        else:
            await updater.start_polling(
                timeout=int(poll_timeout), allowed_updates=list(ALLOWED_UPDATES)
            )
        await application.start()
        try:
            yield application
        finally:
            if updater.running:
                await updater.stop()
            await application.stop()
    finally:
        await application.shutdown()


def run(settings: Settings, *, webhook: bool = False, knowledge: Knowledge | None = None) -> int:
    """``cadrebot run``: serve until SIGINT/SIGTERM. Returns the process exit code."""
    if bot_token(settings) is None:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    try:
        hook = WebhookConfig.from_settings(settings) if webhook else None
    except ConfigurationError as error:
        print(f"错误：{error}", file=sys.stderr)
        return 2
    if hook is None:
        # Through the inbox: an update is stored before Telegram is told it arrived.
        from cadrebot.bot.telegram.polling import run_polling

        asyncio.run(run_polling(settings, knowledge=knowledge))
        return 0
    services = build_services(settings, knowledge=knowledge)
    with services:
        application = build_application(services)
        log.info("serving the webhook on %s:%d/%s", hook.listen, hook.port, hook.url_path)
        application.run_webhook(
            listen=hook.listen,
            port=hook.port,
            url_path=hook.url_path,
            webhook_url=hook.webhook_url,
            secret_token=hook.secret_token,
            allowed_updates=list(ALLOWED_UPDATES),
        )
    return 0
