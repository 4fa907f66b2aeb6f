"""Cut a cleaned policy document into retrievable chunks that keep their place in it.

The documents are government notices: a header (issuer, 文号, 关于印发…的通知, date), a
preamble, headings 一、/（一）, numbered items 1. that end with a 责任单位 clause, and appendix
tables. One item is one chunk together with its responsible units; one table row is one chunk
that repeats its column headers; every chunk carries the heading path that locates it, so
"which units are responsible for 动态监测" or "目标值 of 就业规模" are answered by one chunk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cadrebot.indexer.cleaning import (
    APPENDIX_LINE,
    ARTICLE_HEADING,
    CHAPTER_HEADING,
    DATE_LINE,
    DOC_NUMBER_LINE,
    ISSUED_LINE,
    ITEM_HEADING,
    L1_HEADING,
    L2_HEADING,
    clean_text,
    ends_sentence,
    is_table_row,
)
from cadrebot.indexer.types import Chunk, ChunkKind, Document

# --- the notice header ---------------------------------------------------------------------

_TRANSMITTAL = re.compile(r"(现将|现把).{0,80}印发给你们|印发给你们")
_CLAUSE_PUNCT = re.compile(r"[，。；：,;:！？!?]")


def is_title_like(line: str) -> bool:
    """Short and without clause punctuation: a title, an issuer or a signature line."""
    return 0 < len(line) <= 60 and not _CLAUSE_PUNCT.search(line) and not line.endswith((".", "。"))


def _is_structural(line: str) -> bool:
    return is_table_row(line) or any(
        p.match(line)
        for p in (L1_HEADING, L2_HEADING, ITEM_HEADING, ARTICLE_HEADING, CHAPTER_HEADING)
    )


def split_notice_header(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split non-blank lines into the notice header and the body.

    The header is what precedes the first heading or running paragraph: issuer line
    ("…文件"), 文号, "关于印发…的通知", the addressees ("各…："), the transmittal sentence
    ("现将…印发给你们…"), signature, date, "…印发" line and the document's own title.
    """
    header: list[str] = []
    transmitted = False
    for index, line in enumerate(lines):
        if _is_structural(line) or APPENDIX_LINE.match(line):
            return header, list(lines[index:])
        if (
            DOC_NUMBER_LINE.match(line)
            or DATE_LINE.match(line)
            or ISSUED_LINE.search(line)
            or line.startswith("关于印发")
            or is_title_like(line)
        ):
            header.append(line)
        elif not transmitted and _TRANSMITTAL.search(line) and len(line) <= 200:
            header.append(line)
            transmitted = True
        elif (
            not transmitted
            and line.endswith(("：", ":"))
            and len(line) <= 150
            and any(h.startswith("关于") for h in header)
        ):
            header.append(line)  # addressees (主送机关)
        else:
            return header, list(lines[index:])
    return header, []


# --- responsible-unit clauses ----------------------------------------------------------------

_OPENERS = "（(〔【[［"
_CLOSERS = "）)〕】]］"
_CLAUSE_START = re.compile(rf"[{re.escape(_OPENERS)}]\s*责任单位\s*[:：]")


def split_responsible(text: str) -> tuple[str, str]:
    """Split ``…。（责任单位：省乡村振兴局、省民政厅等）`` into (body, units).

    The clause sits at the end of an item; its brackets are not always a matching pair in the
    extracted text (``〔责任单位：…】``) and the units themselves contain brackets
    (``区农办（乡村振兴局）``), so the clause runs from its label to the end of the text.
    Returns the text unchanged and ``""`` when there is no clause.
    """
    starts = list(_CLAUSE_START.finditer(text))
    if not starts:
        return text, ""
    start = starts[-1]
    units = text[start.end() :].strip()
    units = units.rstrip("。 ")
    if units and units[-1] in _CLOSERS:
        units = units[:-1]
    return text[: start.start()].rstrip(), units.strip()


def is_responsible_clause(line: str) -> bool:
    """A paragraph that is only a 责任单位 clause (it was pushed onto a new page)."""
    return bool(_CLAUSE_START.match(line))


# --- sentences -------------------------------------------------------------------------------

_SENTENCE_END = frozenset("。；！？!?;")
_BRACKET_OPEN = frozenset("（(〔【[［《“‘「『")
_BRACKET_CLOSE = frozenset("）)〕】]］》”’」』")


def split_sentences_outside_brackets(text: str) -> list[str]:
    """Split at 。；！？ outside brackets and quotes; the punctuation stays with its sentence."""
    sentences: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char in _BRACKET_OPEN:
            depth += 1
        elif char in _BRACKET_CLOSE:
            depth = max(0, depth - 1)
            # “…。” closes a sentence together with its quote.
            if depth == 0 and index > 0 and text[index - 1] in _SENTENCE_END:
                sentences.append(text[start : index + 1])
                start = index + 1
        elif char in _SENTENCE_END and depth == 0:
            following = text[index + 1 : index + 2]
            if following and following in _BRACKET_CLOSE:
                continue  # the closing quote ends it
            sentences.append(text[start : index + 1])
            start = index + 1
        elif char == "\n" and depth == 0:
            sentences.append(text[start : index + 1])
            start = index + 1
    sentences.append(text[start:])
    # Keep a paragraph's trailing newline so packed parts keep their line structure.
    return [s for s in (s.strip(" ") for s in sentences) if s.strip()]


def _split_overlong(sentence: str, limit: int) -> list[str]:
    """Last resort for one sentence over 2×limit: cut at commas, then hard."""
    pieces = [p for p in re.split(r"(?<=[，,、])", sentence) if p]
    out: list[str] = []
    current = ""
    for piece in pieces:
        while len(piece) > limit:
            if current:
                out.append(current)
                current = ""
            out.append(piece[:limit])
            piece = piece[limit:]
        if current and len(current) + len(piece) > limit:
            out.append(current)
            current = ""
        current += piece
    if current:
        out.append(current)
    return out


def pack_sentences(sentences: Sequence[str], max_chars: int) -> list[str]:
    """Group sentences into parts of at most ``max_chars`` (a lone long sentence may exceed it).

    Parts are balanced, so a long item becomes e.g. 2×250 characters rather than 360 + 140.
    A sentence is only ever cut when it alone is over twice ``max_chars``.
    """
    units: list[str] = []
    for sentence in sentences:
        if len(sentence) > 2 * max_chars:
            units.extend(_split_overlong(sentence, max_chars))
        else:
            units.append(sentence)
    total = sum(len(u) for u in units)
    if total <= max_chars:
        return ["".join(units).strip()] if units else []
    target = total / math.ceil(total / max_chars)
    parts: list[list[str]] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if current and (size + len(unit) > max_chars or size >= target):
            parts.append(current)
            current, size = [], 0
        current.append(unit)
        size += len(unit)
    if current:
        last_size = sum(len(u) for u in current)
        previous = sum(len(u) for u in parts[-1]) if parts else 0
        if parts and last_size < max_chars // 4 and previous + last_size <= max_chars * 1.25:
            parts[-1].extend(current)
        else:
            parts.append(current)
    return ["".join(p).strip() for p in parts]


def _split_body(text: str, max_chars: int, *, clause: str = "") -> list[str]:
    """Split a passage at sentence ends; a trailing 责任单位 clause stays with the last part."""
    sentences = split_sentences_outside_brackets(text)
    if clause and sentences:
        sentences[-1] += clause
    elif clause:
        sentences = [clause]
    return pack_sentences(sentences, max_chars)


# --- headings ----------------------------------------------------------------------------------

_RANK_CHAPTER = 0.8
_RANK_L1 = 1.0
_RANK_L2 = 2.0
_RANK_ITEM = 3.0


@dataclass(frozen=True)
class _Heading:
    rank: float
    marker: str  # normalised marker: "一、", "（一）", "1.", "第三条"
    number: str
    title: str
    has_body: bool

    @property
    def label(self) -> str:
        if self.rank == _RANK_ITEM and self.marker.endswith("."):
            return f"{self.marker} {self.title}".rstrip()
        return f"{self.marker}{self.title}"


def _title_of(rest: str) -> tuple[str, bool]:
    """Heading title and whether running text follows it on the same line.

    "强化动态监测识别。落实…" → ("强化动态监测识别", True); "指导思想" → ("指导思想", False);
    "教育帮扶方面，加强部门联动，…。" → ("教育帮扶方面", True).
    """
    rest = rest.strip()
    end = min((i for i in (rest.find("。"), rest.find("；")) if i >= 0), default=-1)
    if end < 0:
        if len(rest) <= 80:
            return rest, False
        comma = rest.find("，")
        return (rest[:comma] if 0 < comma <= 30 else rest[:30]), True
    first = rest[:end]
    has_body = bool(rest[end + 1 :].strip())
    if len(first) <= 40:
        return first, has_body
    comma = first.find("，")
    return (first[:comma] if 0 < comma <= 30 else first[:30]), True


def _parse_heading(line: str) -> _Heading | None:
    match = L1_HEADING.match(line)
    if match:
        title, body = _title_of(line[match.end() :])
        return _Heading(_RANK_L1, f"{match.group(1)}、", match.group(1), title, body)
    match = L2_HEADING.match(line)
    if match:
        title, body = _title_of(line[match.end() :])
        return _Heading(_RANK_L2, f"（{match.group(1)}）", match.group(1), title, body)
    match = CHAPTER_HEADING.match(line)
    if match:
        title, body = _title_of(line[match.end() :])
        return _Heading(_RANK_CHAPTER, match.group(0) + " ", match.group(1), title, body)
    match = ARTICLE_HEADING.match(line)
    if match:
        # 第X条 carries no title: everything after the marker is the article's text.
        rest = line[match.end() :].strip()
        return _Heading(_RANK_ITEM, match.group(0), match.group(1), "", bool(rest))
    match = ITEM_HEADING.match(line)
    if match:
        title, body = _title_of(line[match.end() :])
        return _Heading(_RANK_ITEM, f"{match.group(1)}.", match.group(1), title, body)
    return None


# --- tables ------------------------------------------------------------------------------------

_SEPARATOR_CELL = re.compile(r"^:?-{2,}:?$")
_SERIAL_HEADER = re.compile(r"^(序号|编号|No\.?)$", re.IGNORECASE)
# Columns whose cells are merged over several rows in the source (left empty below the first).
_FILL_DOWN_HEADER = re.compile(r"事项|单位|部门|时限|时间|类别|分类|领域|环节")
_RESPONSIBLE_HEADER = re.compile(r"责任单位|牵头单位|责任部门|牵头部门")
_MAIN_TEXT_HEADER = re.compile(r"任务要求|工作内容|主要内容|具体措施|工作措施|任务内容")


def split_cells(line: str) -> list[str]:
    """Cells of a markdown (``| a | b |``, possibly cut off) or tab-separated row."""
    if line.startswith("|"):
        inner = line[1:]
        if inner.endswith("|"):
            inner = inner[:-1]
        return [c.strip() for c in inner.split("|")]
    return [c.strip() for c in line.split("\t")]


def _is_separator(cells: Sequence[str]) -> bool:
    return any(cells) and all(not c or _SEPARATOR_CELL.match(c) for c in cells)


def _key(cells: Sequence[str]) -> tuple[str, ...]:
    return tuple(re.sub(r"\s+", "", c) for c in cells)


@dataclass
class _Row:
    draft: _Draft
    cells: list[str]


@dataclass
class _Table:
    path: tuple[str, ...]
    header: list[str] = field(default_factory=list)
    section_row: str = ""
    previous: list[str] = field(default_factory=list)
    # Merged cells, per fill-down column: rows still waiting for a label printed further down
    # (the converter puts a merged cell's text in the middle row of its span), the rows that
    # carry the current label, and whether that label was printed in the row just before.
    waiting: dict[int, list[_Row]] = field(default_factory=dict)
    labelled: dict[int, list[_Row]] = field(default_factory=dict)
    label_just_printed: set[int] = field(default_factory=set)

    def forget_labels(self) -> None:
        """A new header or an in-table section: merged cells do not reach across it."""
        self.previous = []
        self.waiting.clear()
        self.labelled.clear()
        self.label_just_printed.clear()

    def fill_columns(self) -> list[int]:
        return [i for i, h in enumerate(self.header) if _FILL_DOWN_HEADER.search(h)]

    def serial_columns(self) -> set[int]:
        return {i for i, h in enumerate(self.header) if _SERIAL_HEADER.match(h)}

    def realign(self, cells: list[str]) -> list[str]:
        """Undo a row shifted right by the converter: the main text column is empty and a
        sentence sits in a later column ("| 15 | | | 按要求落实…。 | 全年 |")."""
        main = next((i for i, h in enumerate(self.header) if _MAIN_TEXT_HEADER.search(h)), None)
        if main is None or cells[main]:
            return cells
        for shift in range(1, len(cells) - main):
            moved = cells[main + shift]
            if moved:
                if len(moved) >= 15 and moved[-1] in "。；":
                    return [*cells[:main], *cells[main + shift :], *[""] * shift]
                return cells
        return cells


def _render_into(header: Sequence[str], row: _Row) -> None:
    """(Re)write a table row's chunk text and responsible units from its cells."""
    row.draft.paragraphs[:] = [_render_row(header, row.cells)]
    row.draft.responsible = next(
        (
            row.cells[i]
            for i, name in enumerate(header)
            if _RESPONSIBLE_HEADER.search(name) and row.cells[i]
        ),
        "",
    )


def _render_row(header: Sequence[str], cells: Sequence[str]) -> str:
    """ "序号：8；工作指标：…；目标值：≥130.9万人；…" (empty cells left out)."""
    text = ""
    for name, value in zip(header, cells, strict=True):
        if not value:
            continue
        if text and text[-1] not in "。；！？":
            text += "；"
        text += f"{name}：{value}" if name else value
    return text


# --- the chunk builder ---------------------------------------------------------------------------


@dataclass
class _Draft:
    """A passage on its way to becoming one or more chunks."""

    kind: ChunkKind
    section: tuple[str, ...]
    paragraphs: list[str]
    responsible: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    closed: bool = False  # an item is closed once its 责任单位 clause is seen
    title_only: bool = False  # a numbered line without running text (a list entry)

    def add(self, paragraph: str) -> None:
        if self.paragraphs and not ends_sentence(self.paragraphs[-1]):
            self.paragraphs[-1] += paragraph  # the rest of a sentence split by a page break
        else:
            self.paragraphs.append(paragraph)


@dataclass
class _Outline:
    """Where the parser stands: the open headings and what the current section has seen."""

    stack: list[tuple[float, str]] = field(default_factory=list)
    block_has_items: bool = False
    block_has_l2: bool = False
    suspect_from: int | None = None  # stack depth where an out-of-place part begins

    def path(self) -> tuple[str, ...]:
        labels = tuple(label for _, label in self.stack)
        if self.suspect_from is not None:
            return labels[self.suspect_from :]
        return labels

    def pop_to(self, rank: float) -> None:
        while self.stack and self.stack[-1][0] >= rank:
            self.stack.pop()

    def start_block(self, rank: float, label: str) -> None:
        """A new top-level block (一、 heading or appendix): flags and suspicion reset."""
        self.pop_to(rank)
        self.stack.append((rank, label))
        self.block_has_items = False
        self.block_has_l2 = False
        self.suspect_from = None


class _Chunker:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.drafts: list[_Draft] = []
        self.outline = _Outline()
        self.item: _Draft | None = None
        self.table: _Table | None = None

    # Drafts ---------------------------------------------------------------------------------

    def _suspect_extra(self) -> dict[str, str]:
        return {"suspect": "out_of_place"} if self.outline.suspect_from is not None else {}

    def close_item(self) -> None:
        if self.item is not None:
            self.drafts.append(self.item)
            self.item = None

    def paragraph(self, text: str) -> None:
        self.drafts.append(
            _Draft(ChunkKind.PARAGRAPH, self.outline.path(), [text], extra=self._suspect_extra())
        )

    def responsible_clause(self, line: str) -> None:
        """A clause on its own paragraph belongs to the item before it."""
        target = self.item
        if target is None and self.drafts and self.drafts[-1].kind == ChunkKind.ITEM:
            target = self.drafts[-1]
        if target is None or target.responsible:
            self.paragraph(line)
            return
        _, units = split_responsible(line)
        target.paragraphs.append(line)
        target.responsible = units
        target.closed = True
        target.title_only = False

    def running_text(self, line: str) -> None:
        if self.item is not None and not self.item.closed:
            self.item.add(line)
            self.item.title_only = False
            _, units = split_responsible(line)
            if units:
                self.item.responsible = units
                self.item.closed = True
            return
        self.close_item()
        self.paragraph(line)

    # Headings -------------------------------------------------------------------------------

    def heading(self, line: str, heading: _Heading) -> None:
        self.close_item()
        outline = self.outline
        if heading.rank == _RANK_L2:
            if outline.block_has_items and not outline.block_has_l2:
                # （一） after numbered items of a block that never used （一）: the hierarchy
                # is broken, typically text pasted in from another document.
                outline.pop_to(_RANK_L2)
                outline.suspect_from = len(outline.stack)
            outline.block_has_l2 = True
        elif heading.rank == _RANK_ITEM:
            outline.block_has_items = True

        if heading.rank <= _RANK_L1 and not heading.has_body:
            outline.start_block(heading.rank, heading.label)
            return
        if heading.rank <= _RANK_L1:
            outline.start_block(heading.rank, heading.label)
            outline.stack.pop()  # an 一、 with running text is item-like, not a path element
        if heading.rank < _RANK_ITEM and not heading.has_body:
            outline.pop_to(heading.rank)
            outline.stack.append((heading.rank, heading.label))
            return
        if heading.rank < _RANK_ITEM:
            outline.pop_to(heading.rank)  # a （一） with running text is item-like
        extra = {"item_no": heading.number}
        if heading.title:
            extra["item_title"] = heading.title
        extra.update(self._suspect_extra())
        _, units = split_responsible(line)
        self.item = _Draft(
            ChunkKind.ITEM,
            (*outline.path(), heading.label),
            [line],
            responsible=units,
            extra=extra,
            closed=bool(units),
            title_only=not heading.has_body,
        )

    def appendix(self, line: str, match: re.Match[str], rest: Sequence[str]) -> int:
        """An appendix heading ("附件1") or an attachment note ("附件：1. …"); returns how many
        of the ``rest`` lines were consumed with it."""
        self.close_item()
        self.outline.stack.clear()
        self.outline.suspect_from = None
        consumed = 0
        if re.match(r"^附件\s*\d{0,2}\s*[:：]", line):
            # The attachment note in the body lists the appendices, maybe one per line.
            note = [line]
            first = re.split(r"[:：]", line, maxsplit=1)[1].strip()
            listed = bool(ITEM_HEADING.match(first))
            while listed and consumed < len(rest) and ITEM_HEADING.match(rest[consumed]):
                note.append(rest[consumed])
                consumed += 1
            self.paragraph("\n".join(note))
            if listed:
                return consumed  # each appendix follows under its own "附件N" heading
            label = "附件"
        else:
            label = f"附件{match.group(1) or ''}"
        self.outline.start_block(0.0, label)
        following = rest[consumed] if consumed < len(rest) else None
        if following is not None and is_title_like(following) and not _is_structural(following):
            self.outline.stack.append((0.5, following))
            consumed += 1
        return consumed

    # Tables ---------------------------------------------------------------------------------

    def table_row(self, line: str, next_line: str | None, title: str | None) -> None:
        self.close_item()
        cells = split_cells(line)
        if _is_separator(cells):
            return
        next_is_separator = next_line is not None and _is_separator(split_cells(next_line))
        if self.table is None:
            path = self.outline.path()
            if title and title not in path:
                path = (*path, title)
            self.table = _Table(path=path)
        table = self.table
        if not table.header or (next_is_separator and _key(cells) != _key(table.header)):
            table.header = cells
            table.forget_labels()
            return
        if _key(cells) == _key(table.header):
            # Header repeated on a new page. Empty merged cells at the top of a page belong
            # to a label printed further down that page, not to the previous page's label.
            table.forget_labels()
            return
        width = len(table.header)
        if len(cells) > width:
            cells = [*cells[: width - 1], " ".join(c for c in cells[width - 1 :] if c)]
        cells += [""] * (width - len(cells))
        cells = table.realign(cells)
        first = cells[0]
        if first and not any(cells[1:]) and (L1_HEADING.match(first) or L2_HEADING.match(first)):
            # "| 一、巩固脱贫攻坚成果基础，… | | | |": a section heading inside the table.
            table.section_row = first
            table.forget_labels()
            return
        serial = table.serial_columns()
        content = [c for i, c in enumerate(cells) if i not in serial]
        if not any(content):
            return  # an empty (or serial-number-only) row left over from merged cells
        section = (*table.path, table.section_row) if table.section_row else table.path
        extra = {"row_no": cells[min(serial)]} if serial and cells[min(serial)] else {}
        extra.update(self._suspect_extra())
        row = _Row(_Draft(ChunkKind.TABLE_ROW, section, [], extra=extra), cells)
        touched = [row]
        for column in table.fill_columns():
            touched += self._merged_cell(table, row, column)
        table.previous = list(cells)
        for changed in touched:
            _render_into(table.header, changed)
        self.drafts.append(row.draft)

    @staticmethod
    def _merged_cell(table: _Table, row: _Row, column: int) -> list[_Row]:
        """Fill ``row``'s cell of a fill-down ``column`` (merged in the source) and give rows
        above the label it prints; returns the earlier rows whose cell changed."""
        cells, value = row.cells, row.cells[column]
        labelled = table.labelled.setdefault(column, [])
        if not value:
            if table.previous and table.previous[column]:
                cells[column] = table.previous[column]  # the label of the rows above
                labelled.append(row)
            else:
                table.waiting.setdefault(column, []).append(row)
            table.label_just_printed.discard(column)
            return []
        label = table.previous[column] if table.previous else ""
        if (
            column in table.label_just_printed
            and ITEM_HEADING.match(label)
            and not ITEM_HEADING.match(value)
            and len(value) <= 6
        ):
            # "| 38 | 14. 深化农村人居环境整治 |" then "| 39 | 提升 |": the label's text wrapped
            # over two rows of its merged cell, not a new label.
            for member in labelled:
                member.cells[column] = label + value
            cells[column] = label + value
            labelled.append(row)
            table.label_just_printed.discard(column)
            return list(labelled[:-1])
        # A new label: rows waiting above it (top of a page or table) are part of its span.
        above = table.waiting.pop(column, [])
        for waiting in above:
            waiting.cells[column] = value
        table.labelled[column] = [*above, row]
        table.label_just_printed.add(column)
        return above

    # Driver ---------------------------------------------------------------------------------

    def run(self, lines: Sequence[str]) -> None:
        header, body = split_notice_header(lines)
        if header:
            self.drafts.append(_Draft(ChunkKind.HEADING, (), ["\n".join(header)]))
        index = 0
        while index < len(body):
            line = body[index]
            following = body[index + 1] if index + 1 < len(body) else None
            index += 1
            if is_table_row(line):
                self.table_row(line, following, None)
                continue
            self.table = None
            appendix = APPENDIX_LINE.match(line)
            heading = _parse_heading(line)
            if appendix:
                index += self.appendix(line, appendix, body[index:])
            elif is_responsible_clause(line):
                self.responsible_clause(line)
            elif heading is not None:
                self.heading(line, heading)
            elif is_title_like(line) and following is not None and is_table_row(following):
                self.close_item()
                self.table_row(following, body[index + 1] if index + 1 < len(body) else None, line)
                index += 1
            else:
                self.running_text(line)
        self.close_item()

    # Output ---------------------------------------------------------------------------------

    def passages(self) -> Iterator[tuple[_Draft, str, int, int]]:
        """(draft, text, part, parts) in document order; list entries grouped together."""
        pending: list[_Draft] = []

        def flush() -> Iterator[tuple[_Draft, str, int, int]]:
            if not pending:
                return
            group = _Draft(ChunkKind.PARAGRAPH, pending[0].section[:-1], [], extra={})
            group.extra.update({k: v for k, v in pending[0].extra.items() if k == "suspect"})
            texts = pack_sentences([d.paragraphs[0] + "\n" for d in pending], self.max_chars)
            for part, text in enumerate(texts, 1):
                yield group, text.strip(), part, len(texts)
            pending.clear()

        for draft in self.drafts:
            if draft.kind == ChunkKind.ITEM and draft.title_only and not draft.responsible:
                if pending and pending[0].section[:-1] != draft.section[:-1]:
                    yield from flush()
                pending.append(draft)
                continue
            yield from flush()
            if draft.kind in (ChunkKind.HEADING, ChunkKind.TABLE_ROW):
                yield draft, draft.paragraphs[0], 1, 1
                continue
            text = "\n".join(draft.paragraphs)
            clause = ""
            if draft.responsible:
                text, _ = split_responsible(text)
                clause = "\n".join(draft.paragraphs)[len(text) :].strip()
            parts = _split_body(text, self.max_chars, clause=clause)
            for part, part_text in enumerate(parts, 1):
                yield draft, part_text, part, len(parts)
        yield from flush()


def chunk_document(doc: Document, *, max_chars: int = 360) -> list[Chunk]:
    """Chunks of one document in document order, with stable ids ``<hash12>-<position>``."""
    text = clean_text(doc.text)
    lines = [line for line in text.split("\n") if line.strip()]
    chunker = _Chunker(max_chars)
    chunker.run(lines)
    chunks: list[Chunk] = []
    for position, (draft, text_part, part, parts) in enumerate(chunker.passages()):
        extra = dict(draft.extra)
        if parts > 1:
            extra["part"] = f"{part}/{parts}"
        chunks.append(
            Chunk(
                chunk_id=f"{doc.content_hash[:12]}-{position:04d}",
                doc_id=doc.meta.doc_id,
                position=position,
                kind=draft.kind,
                section=draft.section,
                text=text_part,
                responsible=draft.responsible,
                extra=extra,
            )
        )
    return chunks
