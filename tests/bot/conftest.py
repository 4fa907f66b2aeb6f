"""The real stack on a temporary data dir: a tiny knowledge base written here, the real
default embedder, SQLite under the data dir, a fixed clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cadrebot.bot.wiring import ConversationStack, build_conversation_stack, build_knowledge
from cadrebot.settings import Settings
from tests.support.clock import FixedClock, at
from tests.support.settings import make_settings

NOW = at(2026, 5, 12, 10, 0)

CATALOG = """\
["work-points.txt"]
title = "测试县2024年防返贫工作要点"
issuer = "测试县乡村振兴领导小组"
doc_number = "测巩字〔2024〕1号"
date = "2024-03-01"
level = "县"
region = "测试县"

["industry.txt"]
title = "测试县产业奖补实施办法"
issuer = "测试县农业农村局"
doc_number = "测农字〔2024〕3号"
date = "2024-04-01"
level = "县"
region = "测试县"
"""

WORK_POINTS = """\
测试县2024年防返贫工作要点

一、守住底线

1. 强化动态监测。监测对象从发现返贫致贫风险线索之日起，到完成识别认定一般不超过15天。（责任单位：县乡村振兴局）

2. 落实帮扶措施。在县级批准新识别监测对象后10天内完成帮扶计划制定。（责任单位：县农业农村局）
"""

INDUSTRY = """\
测试县产业奖补实施办法

一、申报

1. 产业奖补。脱贫户和监测户每年分两批申报产业奖补，村委会公示7天。（责任单位：县农业农村局）
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "catalog.toml").write_text(CATALOG, encoding="utf-8")
    (knowledge / "work-points.txt").write_text(WORK_POINTS, encoding="utf-8")
    (knowledge / "industry.txt").write_text(INDUSTRY, encoding="utf-8")
    return make_settings(tmp_path / "data", knowledge)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


StackFactory = Callable[[], ConversationStack]


@pytest.fixture
def open_stack(settings: Settings, clock: FixedClock) -> Iterator[StackFactory]:
    """Builds and opens a whole new stack (knowledge, database, service) on the data dir,
    the way ``cadrebot chat`` does; every call is a fresh process as far as objects go."""
    opened: list[ConversationStack] = []

    def factory() -> ConversationStack:
        stack = build_conversation_stack(settings, knowledge=build_knowledge(settings), clock=clock)
        stack.open()
        opened.append(stack)
        return stack

    yield factory
    for stack in opened:
        stack.close()
