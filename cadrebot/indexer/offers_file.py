"""Reads the offers (``offers.toml`` in the knowledge folder) at start: which everyday
phrases offer which form under the answer (a hardship described → ``/report``).

The file::

    [groups]
    trouble = ["我", "家", "了", "怎么办"]

    [[offer]]
    category = "疾病"
    command = "/report"
    label = "立即申报"
    phrases = ["住院", "看病", "生病"]
    requires = ["trouble"]   # names of [groups]; each must match as well

A missing file offers nothing; a malformed one is an error at start, with the reason in
Chinese, so a typo never silently turns the offers off.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cadrebot.handlers.offers import Offer, OfferBook
from cadrebot.indexer.toml_files import read_toml

log = logging.getLogger(__name__)

OFFERS_FILE = "offers.toml"


class OffersFileError(ValueError):
    """The offers file cannot be used; the message says what to fix (Chinese)."""


def offers_path(knowledge_dir: Path) -> Path:
    return knowledge_dir / OFFERS_FILE


def load_offers(path: Path) -> OfferBook:
    """The offers in ``path`` (none if there is no such file)."""
    data = read_toml(path, "申报提示文件", OffersFileError)
    if data is None:
        log.warning("no offers file at %s: answers offer no forms", path)
        return OfferBook()
    book = parse_offers(data, source=str(path))
    log.info("offers: %d categories from %s", len(book.offers), path)
    return book


def parse_offers(data: dict[str, Any], *, source: str = OFFERS_FILE) -> OfferBook:
    groups_data = data.get("groups", {})
    if not isinstance(groups_data, dict):
        raise OffersFileError(f"申报提示文件 {source}：groups 应写作 [groups] 表。")
    groups = {name: _words(words, f"groups.{name}", source) for name, words in groups_data.items()}
    entries = data.get("offer", [])
    if not isinstance(entries, list):
        raise OffersFileError(f"申报提示文件 {source}：offer 应写作 [[offer]] 表。")
    offers: list[Offer] = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise OffersFileError(f"申报提示文件 {source}：第{n}个 [[offer]] 格式有误。")
        category = _text(entry, "category", n, source)
        command = _text(entry, "command", n, source)
        if not command.startswith("/"):
            raise OffersFileError(f"申报提示文件 {source}：“{category}”的 command 应以 / 开头。")
        requires: list[tuple[str, ...]] = []
        for name in _words(entry.get("requires", []), f"{category}.requires", source):
            if name not in groups:
                raise OffersFileError(
                    f"申报提示文件 {source}：“{category}”引用了未定义的词组“{name}”。"
                )
            requires.append(groups[name])
        phrases = _words(entry.get("phrases"), f"{category}.phrases", source)
        if not phrases:
            raise OffersFileError(f"申报提示文件 {source}：“{category}”没有写 phrases。")
        offers.append(
            Offer(
                category=category,
                command=command,
                label=_text(entry, "label", n, source),
                phrases=phrases,
                requires=tuple(requires),
            )
        )
    return OfferBook(offers)


def _text(entry: dict[str, Any], key: str, n: int, source: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OffersFileError(f"申报提示文件 {source}：第{n}个 [[offer]] 缺少 {key}。")
    return value.strip()


def _words(value: Any, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise OffersFileError(f"申报提示文件 {source}：{where} 应是字符串列表。")
    return tuple(w.strip() for w in value if w.strip())
