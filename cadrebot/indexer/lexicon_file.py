"""The everyday-words lexicon file as the admins edit it (``knowledge/lexicon.toml``).

Implements :class:`~cadrebot.handlers.ports.LexiconStore`. An edit is validated before
anything is written: first with Chinese messages that say where the problem is (the line of
a TOML syntax error, the table and phrase of a bad entry), then by the searcher's own parser
(:func:`~cadrebot.indexer.lexicon.parse_lexicon`), so the file written is always one the
searcher accepts. It is written atomically (a reader sees the old file or the new one) under
an exclusive ``flock``; every searcher re-reads it when its size or time changes.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cadrebot.handlers.ports import KnowledgeError, LexiconEntry, LexiconText
from cadrebot.indexer.lexicon import MAX_PHRASE_CHARS, LexiconError, parse_lexicon
from cadrebot.indexer.toml_files import locked

MAX_LEXICON_CHARS = 200_000  # a form field of at most 1 MB (Starlette's limit)
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_AT_LINE = re.compile(r"at line (\d+), column (\d+)")
_FORMAT_HINT = (
    '每条应写作 "说法" = ["政策用语", "政策用语"]，放在 [everyday.类别] 或 [abbreviations] 之下。'
)


def _toml_error(error: tomllib.TOMLDecodeError) -> str:
    where = _AT_LINE.search(str(error))
    if where:
        place = f"第 {where[1]} 行第 {where[2]} 列附近"
    else:
        place = "文件末尾" if "end of document" in str(error) else "文件中"
    return f"词表格式有误：{place}不符合 TOML 格式。{_FORMAT_HINT}"


def _check_words(table: str, phrase: object, value: object) -> None:
    if not isinstance(phrase, str) or not phrase.strip():
        raise KnowledgeError(f"词表 [{table}] 中有空的说法。{_FORMAT_HINT}")
    name = phrase.strip()
    if len(name) > MAX_PHRASE_CHARS:
        raise KnowledgeError(f"词表 [{table}] 中的“{name}”太长（最多 {MAX_PHRASE_CHARS} 个字）。")
    terms = [value] if isinstance(value, str) else value
    if not isinstance(terms, list) or not terms:
        raise KnowledgeError(f"词表 [{table}] 中的“{name}”应对应一个或多个政策用语。{_FORMAT_HINT}")
    for term in terms:
        if not isinstance(term, str) or not term.strip():
            raise KnowledgeError(f"词表 [{table}] 中的“{name}”含有空的或不是文字的政策用语。")
        if len(term.strip()) > MAX_PHRASE_CHARS:
            raise KnowledgeError(
                f"词表 [{table}] 中“{name}”的政策用语“{term.strip()}”太长"
                f"（最多 {MAX_PHRASE_CHARS} 个字）。"
            )
    if all(t.strip() == name for t in terms):
        raise KnowledgeError(f"词表 [{table}] 中的“{name}”只对应它自己，请写出对应的政策用语。")


def _tables(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table name, its phrases) in file order; KnowledgeError for a wrong shape."""
    unknown = sorted(set(data) - {"everyday", "abbreviations"})
    if unknown:
        raise KnowledgeError(
            "词表只能包含 [everyday.类别] 和 [abbreviations] 两种表，"
            f"不认识：{'、'.join(unknown)}。"
        )
    for key, value in data.items():
        if not isinstance(value, dict):
            raise KnowledgeError(f"词表的“{key}”应当是表。{_FORMAT_HINT}")
        if key == "abbreviations":
            yield key, value
            continue
        for area, phrases in value.items():
            if not isinstance(phrases, dict):
                raise KnowledgeError(f"词表的 [everyday.{area}] 应当是表。{_FORMAT_HINT}")
            yield f"everyday.{area}", phrases


def lexicon_entries(text: str) -> tuple[LexiconEntry, ...]:
    """The entries of a lexicon text; :class:`KnowledgeError` (Chinese) when it is invalid."""
    if len(text) > MAX_LEXICON_CHARS:
        raise KnowledgeError(f"词表太大（超过 {MAX_LEXICON_CHARS} 个字符）。")
    for number, line in enumerate(text.splitlines(), 1):
        if any(ch < " " and ch not in _ALLOWED_CONTROLS for ch in line):
            raise KnowledgeError(f"词表第 {number} 行含有控制字符，请删除后再保存。")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise KnowledgeError(_toml_error(error)) from None
    entries: list[LexiconEntry] = []
    for table, phrases in _tables(data):
        for phrase, value in phrases.items():
            _check_words(table, phrase, value)
            terms = (value,) if isinstance(value, str) else tuple(value)
            entries.append(LexiconEntry(table, phrase.strip(), tuple(t.strip() for t in terms)))
    try:  # the searcher's own parser has the last word
        parse_lexicon(text)
    except LexiconError as error:
        raise KnowledgeError(f"词表未通过检查：{error}") from None
    return tuple(entries)


class LexiconFile:
    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def read(self) -> LexiconText:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LexiconText("", ())
        except (OSError, UnicodeDecodeError):
            return LexiconText(
                "", (), "词表文件无法读取（不是 UTF-8 文本），保存新内容即可替换它。"
            )
        try:
            return LexiconText(text, lexicon_entries(text))
        except KnowledgeError as problem:
            return LexiconText(text, (), problem.message)

    def save(self, text: str) -> LexiconText:
        text = text.replace("\r\n", "\n")
        entries = lexicon_entries(text)  # raises before anything is written
        if not text.endswith("\n"):
            text += "\n"
        with self._locked():
            tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(6)}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path)
        return LexiconText(text, entries)

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self._path)
