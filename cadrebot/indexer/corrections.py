"""Admins' corrections: answers written by the county office, indexed as curated passages.

When the bot answered a question wrongly (or not at all), an admin writes the right answer
and what it rests on. The design:

* **Data in the knowledge folder.** Corrections are entries of ``knowledge/corrections.toml``
  (id, question, answer, source, author, date), beside the documents, the catalog and the
  lexicon. Whatever holds the folder holds the corrections: backups, images, a volume shared
  by several machines. The file is rewritten atomically under an exclusive ``flock``, so two
  processes editing at once never lose each other's entry or leave a torn file.
* **A curated document of the index.** The builder reads the file as one more document
  (:func:`corrections_document`, doc id ``curated:corrections``; a colon can never be in an
  uploaded file's name) whose passages are the answers (:func:`curated_chunks`), located by
  their question as a document's passages are by their headings. A rebuild, incremental or
  ``--rebuild``, therefore keeps them, an edit re-embeds only the edited answer, and every
  worker answers from them as soon as it follows the published index version: no table to
  migrate, no cache to invalidate, nothing held per process.
* **It wins for its question.** The answer composer answers with a correction, verbatim,
  when a correction is among the passages found and its question is the one asked
  (:func:`same_question`: nearly the same words, the same places and numbers), and cites it
  as ``县乡村振兴局解答，<date>（依据：<source>）``. Asked in other words, it competes like any
  other passage and is cited the same way.

Text is stored as text: the answer and the source are quoted, never interpreted as markup.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cadrebot.handlers.ports import (
    CORRECTIONS_FILE,
    CURATED_DOC_ID,
    CURATED_LABEL,
    Correction,
    NotFoundError,
)
from cadrebot.indexer.loaders import DocumentLoadError
from cadrebot.indexer.sentences import question_shape
from cadrebot.indexer.toml_files import locked
from cadrebot.indexer.types import Chunk, ChunkKind, Document, DocumentMeta

CURATED_KIND = "correction"  # Chunk.extra["curated"]
_ID = re.compile(r"^[0-9a-z][0-9a-z-]{0,39}$")
_HEADER = (
    "# 管理员更正（知识库控制台“更正”页面维护）。每条更正作为县乡村振兴局解答编入索引，\n"
    "# 同一问题此后按更正回答。请通过控制台修改；手工修改须保持以下格式。\n"
    "# Corrections written in the web console; each is indexed as a curated passage.\n"
)
SAME_QUESTION = 0.6
"""Share of character pairs two questions must have in common to be the same question."""


class CorrectionFileError(DocumentLoadError):
    """corrections.toml cannot be read; the message is Chinese and says what to fix."""


# --------------------------------------------------------------------------- the file


def _toml_string(value: str) -> str:
    # JSON string escapes (\", \\, \n, \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def render_corrections(corrections: Sequence[Correction]) -> str:
    """The file's text for ``corrections`` (in order)."""
    blocks = [_HEADER]
    for c in corrections:
        blocks.append(
            "[[correction]]\n"
            f"id = {_toml_string(c.id)}\n"
            f"question = {_toml_string(c.question)}\n"
            f"answer = {_toml_string(c.answer)}\n"
            f"source = {_toml_string(c.source)}\n"
            f"author = {_toml_string(c.author)}\n"
            f"date = {_toml_string(c.written.isoformat())}\n"
        )
    return "\n".join(blocks)


def _text_field(entry: dict[str, object], key: str, n: int, *, required: bool = True) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise CorrectionFileError(f"{CORRECTIONS_FILE} 第 {n} 条更正缺少“{key}”或格式有误。")
    return value.strip()


def parse_corrections(text: str) -> list[Correction]:
    """The corrections of a file's text; :class:`CorrectionFileError` naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CorrectionFileError(f"{CORRECTIONS_FILE} 格式有误：{error}") from error
    entries = data.get("correction", [])
    if set(data) - {"correction"} or not isinstance(entries, list):
        raise CorrectionFileError(f"{CORRECTIONS_FILE} 只能包含 [[correction]] 条目。")
    corrections: list[Correction] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise CorrectionFileError(f"{CORRECTIONS_FILE} 第 {n} 条更正格式有误。")
        ident = _text_field(entry, "id", n)
        if not _ID.match(ident) or ident in seen:
            raise CorrectionFileError(f"{CORRECTIONS_FILE} 第 {n} 条更正的编号无效或重复。")
        seen.add(ident)
        question = _text_field(entry, "question", n)
        answer = _text_field(entry, "answer", n)
        raw_date = entry.get("date", "")
        try:
            written = raw_date if isinstance(raw_date, date) else date.fromisoformat(str(raw_date))
        except ValueError:
            raise CorrectionFileError(
                f"{CORRECTIONS_FILE} 第 {n} 条更正的日期应写作 YYYY-MM-DD。"
            ) from None
        corrections.append(
            Correction(
                id=ident,
                question=question,
                answer=answer,
                source=_text_field(entry, "source", n, required=False),
                author=_text_field(entry, "author", n, required=False),
                written=written,
            )
        )
    return corrections


class CorrectionFile:
    """The corrections in ``<knowledge dir>/corrections.toml``
    (:class:`~cadrebot.handlers.ports.CorrectionStore`)."""

    def __init__(self, knowledge_dir: Path) -> None:
        self._dir = knowledge_dir

    @property
    def path(self) -> Path:
        return self._dir / CORRECTIONS_FILE

    def list_all(self) -> list[Correction]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return parse_corrections(text)

    def get(self, correction_id: str) -> Correction | None:
        return next((c for c in self.list_all() if c.id == correction_id), None)

    def add(
        self, question: str, answer: str, source: str, author: str, written: date
    ) -> Correction:
        with self._locked():
            current = self.list_all()
            taken = {c.id for c in current}
            ident = secrets.token_hex(4)
            while ident in taken:
                ident = secrets.token_hex(4)
            added = Correction(ident, question, answer, source, author, written)
            self._write([*current, added])
        return added

    def replace(self, correction: Correction) -> None:
        with self._locked():
            current = self.list_all()
            if not any(c.id == correction.id for c in current):
                raise NotFoundError(f"no correction {correction.id!r}")
            self._write([correction if c.id == correction.id else c for c in current])

    def remove(self, correction_id: str) -> Correction:
        with self._locked():
            current = self.list_all()
            gone = next((c for c in current if c.id == correction_id), None)
            if gone is None:
                raise NotFoundError(f"no correction {correction_id!r}")
            self._write([c for c in current if c.id != correction_id])
        return gone

    def _locked(self) -> AbstractContextManager[None]:
        """Exclusive across threads and processes: read, change and write as one step."""
        return locked(self._dir / CORRECTIONS_FILE)

    def _write(self, corrections: Sequence[Correction]) -> None:
        text = render_corrections(corrections)
        parse_corrections(text)  # never write a file the indexer cannot read
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- the index


def corrections_document(knowledge_dir: Path) -> Document | None:
    """The corrections as one curated document of the index; None when there are none."""
    path = knowledge_dir / CORRECTIONS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CorrectionFileError(f"{CORRECTIONS_FILE} 不是 UTF-8 编码的文本。") from None
    corrections = parse_corrections(text)
    if not corrections:
        return None
    meta = DocumentMeta(
        doc_id=CURATED_DOC_ID,
        title=CURATED_LABEL,
        issuer="县乡村振兴局",
        date=max(c.written for c in corrections).isoformat(),
        source=CORRECTIONS_FILE,
    )
    return Document(meta=meta, text=text, content_hash=hashlib.sha256(data).hexdigest())


def curated_chunks(document: Document) -> list[Chunk]:
    """One passage per correction: the answer, located by its question."""
    return [
        Chunk(
            chunk_id=f"correction-{c.id}",
            doc_id=document.meta.doc_id,
            position=position,
            kind=ChunkKind.PARAGRAPH,
            section=(),
            text=c.answer,
            extra={
                "curated": CURATED_KIND,
                "correction_id": c.id,
                "question": c.question,
                "source": c.source,
                "date": c.written.isoformat(),
            },
        )
        for position, c in enumerate(parse_corrections(document.text))
    ]


def is_curated(chunk: Chunk) -> bool:
    return chunk.extra.get("curated") == CURATED_KIND


def curated_title(chunk: Chunk) -> str:
    """县乡村振兴局解答，2026-12-01: how an answer cites the correction."""
    return f"{CURATED_LABEL}，{chunk.extra.get('date', '')}"


# --------------------------------------------------------------------------- matching

_NOT_WORDS = re.compile(r"[\W_]+")
_TRAILING = re.compile(r"[吗呢呀啊吧么嘛]+$")
_ASK = re.compile(r"^/ask(?:@\w+)?\s*")
_NUMBERS = re.compile(r"\d+")
# A county, district, township by name (信丰县, 蓉江新区, 潭东镇): jieba does not tag every one.
_PLACE = re.compile(r"[\u4e00-\u9fff]{2,4}?(?:新区|县|区|市|镇|乡)")

Places = Callable[[str], Sequence[str]]


def normalise_question(text: str) -> str:
    """What is left of a question to compare: no punctuation, spaces or closing particle."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_WORDS.sub("", _ASK.sub("", text.strip()))
    return _TRAILING.sub("", text) or text


@dataclass(frozen=True)
class _Question:
    """What comparing a question needs, worked out once."""

    text: str
    pairs: Counter[str]  # character pairs of the normalised question
    numbers: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Question:
        norm = normalise_question(text)
        pairs = Counter(norm[i : i + 2] for i in range(len(norm) - 1)) or Counter([norm])
        return cls(text, pairs, frozenset(_NUMBERS.findall(norm)))

    def similarity(self, other: _Question) -> float:
        """Dice coefficient of the two questions' character pairs (0..1)."""
        common = sum((self.pairs & other.pairs).values())
        total = self.pairs.total() + other.pairs.total()
        return 2 * common / total if total else 0.0


def question_similarity(a: str, b: str) -> float:
    return _Question.of(a).similarity(_Question.of(b))


def _places(question: str, places: Places) -> set[str]:
    return set(places(question)) | set(_PLACE.findall(question))


def same_question(asked: str, written: str, places: Places) -> bool:
    """Whether a correction written for ``written`` answers ``asked``: nearly the same words,
    the same places and numbers (信丰县 is not 浮梁县, 2024年 is not 2025年), and the same
    kind of fact asked for (多少钱 is not 什么时候)."""
    a, w = _Question.of(asked), _Question.of(written)
    return (
        a.numbers == w.numbers
        and a.similarity(w) >= SAME_QUESTION
        and question_shape(asked) == question_shape(written)
        and _places(asked, places) == _places(written, places)
    )


class CorrectionIndex:
    """The corrections of one index version, looked up by the question asked.

    Looked up directly rather than through the search's top passages: an answer written for
    a question must win for it even when the question's words rank other passages higher.
    """

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._entries = [
            (chunk, _Question.of(chunk.extra.get("question", "")))
            for chunk in chunks
            if is_curated(chunk)
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, question: str, places: Places) -> Chunk | None:
        """The correction written for ``question`` (the closest, when several are)."""
        if not self._entries:
            return None
        asked = _Question.of(question)
        close = sorted(
            (
                (asked.similarity(written), chunk)
                for chunk, written in self._entries
                if written.numbers == asked.numbers
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        for score, chunk in close:
            if score < SAME_QUESTION:
                break
            # The costlier checks (jieba's place names) only for the close ones.
            if same_question(question, chunk.extra.get("question", ""), places):
                return chunk
        return None
