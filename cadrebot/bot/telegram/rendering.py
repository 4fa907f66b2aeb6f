"""Message text for a phone: Telegram's length limit respected, split at natural breaks."""

from __future__ import annotations

TELEGRAM_TEXT_LIMIT = 4096
MESSAGE_CHARS = 3500  # well under the limit: a long wall of text is unreadable on a phone


def split_text(text: str, limit: int = MESSAGE_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a blank line, else at a line
    end, else at a sentence end (。；), else hard. Never returns an empty list."""
    text = text.strip() or "（空）"
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = -1
        for separator in ("\n\n", "\n", "。", "；", "，"):
            position = window.rfind(separator)
            if position >= limit // 3:
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
