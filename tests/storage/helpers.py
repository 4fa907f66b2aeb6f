"""Test data shared by the storage tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cadrebot.handlers.ports import ConversationKey, NewCase, User

SHANGHAI = ZoneInfo("Asia/Shanghai")
ID_NUMBER = "36072119850312461X"  # a made-up, well-formed 18-character 居民身份证号


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time, the way the service's clock produces them."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


KEY = ConversationKey("telegram", "chat-1")


def risk_report(submitter: User, submitted_at: datetime) -> NewCase:
    return NewCase(
        case_type="risk_report",
        number_prefix="FX",
        status="已受理",
        fields={
            "姓名": "张三",
            "身份证号": ID_NUMBER,
            "风险类型": ["支出骤增", "重残重病"],
            "家庭人口": 4,
            "说明": "今年住院花了六万多元",
        },
        submitter_id=submitter.id,
        township="大塘埠镇",
        village="坪石村",
        submitted_at=submitted_at,
    )
