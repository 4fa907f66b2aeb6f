"""Constants and small helpers shared by the handler tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cadrebot.handlers.forms.validators import id_check_char
from cadrebot.handlers.ports import ConversationKey

SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = ConversationKey("console", "chat-1")
# The worked example of GB 11643-1999 (check character X) and one built with the algorithm.
VALID_ID_X = "11010519491231002X"
VALID_ID = "36012119900101123" + id_check_char("36012119900101123")
IDLE = timedelta(minutes=120)


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)
