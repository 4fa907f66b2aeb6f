"""Suggested next questions (追问): the neighbouring items of the cited passage's section.

After an answer, the reader is offered up to three questions about what stands next to the
passage the answer cites: "谁负责<the item>？" when the item names its 责任单位 (and the
question did not already ask that), then the sibling items' headings as
"<heading>的具体要求是什么？", nearest sibling first. Each question is short enough to be a
button's command (:data:`~cadrebot.handlers.ports.MAX_SUGGESTION_CHARS`); a heading too long
for any of the question forms is left out.

A pure function of the section tree (:class:`~cadrebot.indexer.structured.Structure`, built
once per index version) and the cited chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cadrebot.handlers.ports import MAX_SUGGESTION_CHARS
from cadrebot.indexer.structured import Structure, who_intent
from cadrebot.indexer.types import Chunk, ChunkKind

MAX_SUGGESTIONS = 3

_CN = "一二三四五六七八九十"
_MARKER = re.compile(rf"^\s*(附件\s*\d*|[{_CN}]+、|（[{_CN}]+）|\d+[.、．]\s*)")
_TRAILING = re.compile(r"[。；;，,：:\s]+$")
# Not "有哪些…": that asks for a list (structured.list_intent), not the item's text.
_DETAIL_FORMS = ("{}的具体要求是什么？", "{}有什么要求？")
_WHO_FORM = "谁负责{}？"


def heading_title(label: str) -> str:
    """A heading without its number ("（二）", "3.", "一、") or trailing punctuation."""
    return _TRAILING.sub("", _MARKER.sub("", label)).strip()


def _fit(forms: Sequence[str], title: str) -> str | None:
    for form in forms:
        question = form.format(title)
        if len(question) <= MAX_SUGGESTION_CHARS:
            return question
    return None


def _nearest_first(items: Sequence[str], own: int) -> list[str]:
    """The items other than ``items[own]``, by distance from it (the next one before the
    previous one at equal distance)."""
    order = sorted(
        (i for i in range(len(items)) if i != own), key=lambda i: (abs(i - own), i < own)
    )
    return [items[i] for i in order]


def _item_siblings(structure: Structure, cited: Chunk) -> tuple[str, list[str]]:
    """(the cited item's title, its siblings' titles nearest first) from the section tree:
    the deepest level of the cited chunk's path whose parent section lists two headings."""
    path = cited.section
    by_key = {(s.doc_id, s.path): s for s in structure.sections}
    for depth in range(len(path), 1, -1):
        section = by_key.get((cited.doc_id, path[: depth - 1]))
        if section is None or path[depth - 1] not in section.children:
            continue
        own = section.children.index(path[depth - 1])
        siblings = [heading_title(c) for c in _nearest_first(section.children, own)]
        return heading_title(path[depth - 1]), siblings
    return "", []


def _row_siblings(structure: Structure, cited: Chunk) -> tuple[str, list[str]]:
    """(the cited row's 工作事项, the other rows' of its table section, nearest first)."""
    rows = [
        d
        for d in structure.duties
        if d.chunk.doc_id == cited.doc_id
        and d.chunk.section == cited.section
        and d.chunk.kind == ChunkKind.TABLE_ROW
    ]
    own = next((i for i, d in enumerate(rows) if d.chunk.chunk_id == cited.chunk_id), None)
    if own is None:
        return "", []
    titles = [heading_title(d.title) for d in rows]
    return titles[own], [t for t in _nearest_first(titles, own) if t != titles[own]]


def suggest(question: str, structure: Structure, cited: Chunk) -> list[str]:
    """Up to :data:`MAX_SUGGESTIONS` questions about the cited passage's neighbours."""
    if cited.kind == ChunkKind.TABLE_ROW:
        title, siblings = _row_siblings(structure, cited)
    else:
        title, siblings = _item_siblings(structure, cited)
    asked = re.sub(r"\s", "", question)
    found: list[str] = []
    if title and cited.responsible and not who_intent(question):
        who = _fit((_WHO_FORM,), title)
        if who is not None:
            found.append(who)
    for sibling in siblings:
        if len(found) >= MAX_SUGGESTIONS:
            break
        if len(sibling) < 2 or sibling in asked:
            continue
        detail = _fit(_DETAIL_FORMS, sibling)
        if detail is not None and detail not in found:
            found.append(detail)
    return found[:MAX_SUGGESTIONS]
