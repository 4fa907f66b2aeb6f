"""Channels and wiring: the cadrebot CLI, the console chat and the Telegram application."""
