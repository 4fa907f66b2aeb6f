"""Plain data shared by the indexer, the search layer and the answer composer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ChunkKind(StrEnum):
    ITEM = "item"  # a numbered item (1. / （一） / 第X条 …) with its 责任单位 clause
    PARAGRAPH = "paragraph"  # running text under a heading
    TABLE_ROW = "table_row"  # one table row, rendered with its column headers
    HEADING = "heading"  # a document title / preamble block


@dataclass(frozen=True)
class DocumentMeta:
    """Catalog facts about one policy document."""

    doc_id: str  # stable id: the file name without suffix
    title: str
    issuer: str = ""
    doc_number: str = ""  # 文号, e.g. 赣党农字〔2023〕2号
    date: str = ""  # ISO date or year, as precise as known
    level: str = ""  # 省 / 市 / 县 / 区
    region: str = ""  # e.g. 江西省, 赣州市信丰县
    source: str = ""  # file name inside the knowledge dir

    def citation_label(self) -> str:
        """文件标题（文号）, the way a cadre quotes a document."""
        return f"{self.title}（{self.doc_number}）" if self.doc_number else self.title


@dataclass(frozen=True)
class Document:
    meta: DocumentMeta
    text: str  # raw extracted text, before cleaning
    content_hash: str  # sha256 of the raw file bytes


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage with the heading path that locates it in its document."""

    chunk_id: str  # stable: document hash prefix + position
    doc_id: str
    position: int  # order inside the document
    kind: ChunkKind
    section: tuple[str, ...]  # heading path, outermost first, e.g. ("一、…", "1. 强化动态监测识别")
    text: str  # the passage itself, cleaned
    responsible: str = ""  # 责任单位 named by the item, if any
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def section_label(self) -> str:
        return " › ".join(self.section)
