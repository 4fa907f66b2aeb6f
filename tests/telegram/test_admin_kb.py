"""Admin knowledge base: upload → indexed in the background → swapped in; remove; hit test."""

from __future__ import annotations

import threading
import tomllib
from typing import Any

import pytest

from tests.support.telegram import Harness

NEW_DOCUMENT = """安远县乡村振兴局文件

安远县2025年脐橙产业奖补实施办法

一、奖补对象
全县脱贫户和监测户发展脐橙产业的，可以申请奖补。

二、奖补标准
1. 新种植脐橙。脱贫户和监测户新种植脐橙的，每亩奖补600元，每户最高不超过3000元。
2. 脐橙园改造。对黄龙病疫园改造复种的，每亩奖补400元。

安远县乡村振兴局
2025年3月1日
"""
QUESTION = "安远县脱贫户新种植脐橙每亩奖补多少元？"


async def test_upload_is_indexed_in_background_and_swapped_in(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    farmer = bot.user(4001, "张三")
    farmer.say(QUESTION)
    await farmer.expect("没有找到")

    # Hold the build until the test has seen questions answered while it runs.
    release = threading.Event()
    builder = bot.services.knowledge.builder
    original_build = builder.build

    def gated_build(**kwargs: Any) -> Any:
        assert release.wait(30)
        return original_build(**kwargs)

    monkeypatch.setattr(builder, "build", gated_build)

    admin = bot.admin()
    admin.send_document("anyuan-2025-orange.txt", NEW_DOCUMENT.encode("utf-8"))
    status = await admin.expect("已收到")
    await admin.expect_edit(status, "正在更新索引")
    assert (bot.settings.knowledge_dir / "anyuan-2025-orange.txt").exists()

    farmer.say("监测对象识别认定一般不超过多少天？")  # served from the old index meanwhile
    await farmer.expect("15天")
    release.set()
    done = await admin.expect("✅")
    assert "anyuan-2025-orange" in done["text"]

    farmer.say(QUESTION)
    answer = await farmer.expect("600元")
    assert "安远县2025年脐橙产业奖补实施办法" in answer["text"]

    catalog = tomllib.loads((bot.settings.knowledge_dir / "catalog.toml").read_text("utf-8"))
    assert catalog["anyuan-2025-orange.txt"]["title"] == "安远县2025年脐橙产业奖补实施办法"

    admin.say("/kb")
    listing = await admin.expect("知识库共 2 份文件")
    assert "安远县2025年脐橙产业奖补实施办法" in listing["text"]
    assert "（使用中）" in listing["text"]

    admin.say("/search 脐橙每亩奖补")
    hits = await admin.expect("命中测试")
    assert "1. 得分" in hits["text"] and "安远县" in hits["text"]

    admin.say("/kbremove anyuan-2025-orange.txt")
    await admin.expect("已删除文件")
    await admin.expect("✅")
    farmer.say(QUESTION)
    await farmer.expect("没有找到")
    catalog = tomllib.loads((bot.settings.knowledge_dir / "catalog.toml").read_text("utf-8"))
    assert "anyuan-2025-orange.txt" not in catalog


async def test_upload_refusals_are_clear(bot: Harness) -> None:
    admin = bot.admin()
    admin.send_document("setup.exe", b"MZ\x90\x00")
    await admin.expect("不支持“.exe”类型的文件")
    admin.send_document("huge.pdf", b"%PDF-1.4", claimed_size=50 * 1024 * 1024)
    await admin.expect("文件太大")
    admin.send_document("broken.docx", b"this is not a zip file at all")
    await admin.expect("不是有效的 Word")
    admin.send_document("empty.txt", b"   \n")
    await admin.expect("几乎没有文字")
    admin.say("/kbremove nothing-here.txt")
    await admin.expect("没有名为")
    names = sorted(p.name for p in bot.settings.knowledge_dir.iterdir())
    assert names == ["catalog.toml", "jiangxi-2023-work-points-excerpt.txt"]


async def test_stats_count_questions_and_unanswered(bot: Harness) -> None:
    farmer = bot.user(4002, "李四")
    for question in ("监测对象识别认定一般不超过多少天？", QUESTION, QUESTION):
        farmer.say(question)
        await farmer.expect("")
    admin = bot.admin()
    admin.say("/stats")
    stats = await admin.expect("问答统计")
    assert "共 3 个问题，找到答案 1 个（33%）" in stats["text"]
    assert f"{QUESTION}（2次）" in stats["text"]
