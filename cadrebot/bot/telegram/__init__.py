"""The Telegram channel (python-telegram-bot 22): thin wiring around ``cadrebot.handlers``."""

from cadrebot.bot.telegram.app import (
    ConfigurationError,
    WebhookConfig,
    build_application,
    run,
    serving,
)
from cadrebot.bot.telegram.services import TelegramServices, build_services

__all__ = [
    "ConfigurationError",
    "TelegramServices",
    "WebhookConfig",
    "build_application",
    "build_services",
    "run",
    "serving",
]
