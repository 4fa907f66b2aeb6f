"""Cases as a channel files them, for tests that fill a database through the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from cadrebot.handlers.ports import NewCase

ID_NUMBER = "36072119850312461X"  # a made-up, well-formed 18-character 居民身份证号


def risk_case(
    submitter_id: int,
    submitted_at: datetime,
    *,
    name: str = "张三",
    due_dates: Mapping[str, date] | None = None,
) -> NewCase:
    """A 防返贫 risk report from 大塘埠镇坪石村, with the whole ID number in its fields."""
    return NewCase(
        case_type="risk_report",
        number_prefix="FX",
        status="已受理",
        fields={
            "姓名": name,
            "身份证号": ID_NUMBER,
            "风险类型": ["支出骤增", "重残重病"],
            "家庭人口": 4,
            "说明": "今年住院花了六万多元",
        },
        submitter_id=submitter_id,
        township="大塘埠镇",
        village="坪石村",
        submitted_at=submitted_at,
        due_dates=dict(due_dates or {}),
    )
