"""Repair extraction artefacts in policy-document text.

The documents arrive as text extracted from PDF/Word: sentences broken at page ends, spaces
inside numbers and Chinese words, markdown emphasis, LaTeX fragments and a mix of full-width
and ASCII punctuation. Every step below is a pure function so it can be tested on its own;
:func:`clean_text` runs them in order. Tables (tab-separated or markdown ``|`` rows) survive
cleaning line by line so the chunker can still parse them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Characters that make a neighbouring space meaningless: CJK ideographs, full-width and CJK
# punctuation, curly quotes, dashes and ellipses as used in Chinese text.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WIDE_PUNCT = "\u3000-\u303f\uff00-\uffef\u2018-\u201f\u2014\u2026\u00b7"
_CJK_OR_WIDE = f"[{_CJK}{_WIDE_PUNCT}]"
_SPACE = "[ \u00a0\u3000]"
_COMPARISON = "≥≤＞＜"

# Punctuation that ends a sentence or a clause for good: a line ending in one of these is
# never continued by the next line. Closing brackets end 责任单位 clauses and headings.
SENTENCE_FINAL = frozenset("。；！？：）〕】」』.!?;:")
_CLOSING_QUOTES = frozenset('”’」』"')

# Structural line starts (shared with the chunker, which is why they are public).
L1_HEADING = re.compile(r"^([一二三四五六七八九十]{1,3})、")
L2_HEADING = re.compile(r"^[（(]([一二三四五六七八九十]{1,3})[）)]")
ITEM_HEADING = re.compile(r"^(\d{1,2})\s*[.．、](?!\d)")
ARTICLE_HEADING = re.compile(r"^第([一二三四五六七八九十百零〇\d]{1,5})条")
CHAPTER_HEADING = re.compile(r"^第([一二三四五六七八九十百零〇\d]{1,5})[章节]")
APPENDIX_LINE = re.compile(r"^附件\s*(\d{1,2})?\s*(?:$|[:：])")
DOC_NUMBER = re.compile(
    rf"([{_CJK}]{{2,12}})\s*[\[［【〔(（]\s*(\d{{4}})\s*[\]］】〕)）]\s*(\d{{1,4}})\s*号"
)
DOC_NUMBER_LINE = re.compile(rf"^{DOC_NUMBER.pattern}$")
DATE_LINE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日$")
ISSUED_LINE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*印发$")


def is_table_row(line: str) -> bool:
    """A markdown row (``| a | b |``) or a tab-separated row."""
    return line.startswith("|") or "\t" in line


def is_heading_start(line: str) -> bool:
    """Whether the line opens a heading, a numbered item, an article or an appendix."""
    return any(
        pattern.match(line)
        for pattern in (
            L1_HEADING,
            L2_HEADING,
            ITEM_HEADING,
            ARTICLE_HEADING,
            CHAPTER_HEADING,
            APPENDIX_LINE,
        )
    )


# --- individual steps --------------------------------------------------------------------


def normalize_newlines(text: str) -> str:
    """Unix newlines, no byte-order mark, no form feeds or zero-width characters."""
    text = text.replace("\ufeff", "").replace("\u200b", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    return text


def strip_markdown(text: str) -> str:
    """Drop ``**bold**`` markers, ``#`` heading marks and ``- `` list bullets."""
    text = text.replace("**", "").replace("__", "")
    text = re.sub(r"(?m)^[ \t]*#{1,6}[ \t]+", "", text)
    return re.sub(r"(?m)^[ \t]*[-*+][ \t]+(?=\S)", "", text)


_LATEX_SYMBOLS = {
    r"\geqslant": "≥",
    r"\leqslant": "≤",
    r"\geq": "≥",
    r"\leq": "≤",
    r"\ge": "≥",
    r"\le": "≤",
    r"\times": "×",
    r"\div": "÷",
    r"\pm": "±",
    r"\sim": "～",
    r"\cdot": "·",
    r"\%": "%",
    r"\approx": "≈",
    r"\neq": "≠",
    r"\gt": ">",
    r"\lt": "<",
}
_LATEX_INLINE = re.compile(r"\$([^$\n]{1,80})\$")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+|\\%")


def replace_latex(text: str) -> str:
    """``$\\geq 12.5\\%$`` → ``≥12.5%``: inline maths from the PDF converter, made plain."""

    def plain(match: re.Match[str]) -> str:
        body = match.group(1)
        body = _LATEX_COMMAND.sub(lambda m: _LATEX_SYMBOLS.get(m.group(0), ""), body)
        body = body.replace("{", "").replace("}", "")
        return re.sub(r"\s+", "", body)

    return _LATEX_INLINE.sub(plain, text)


def normalize_doc_numbers(text: str) -> str:
    """赣党农字[2023]10号 / 赣党农字（2023）10号 → 赣党农字〔2023〕10号."""
    return DOC_NUMBER.sub(lambda m: f"{m.group(1)}〔{m.group(2)}〕{m.group(3)}号", text)


_SPACE_NEXT_TO_CJK = re.compile(
    rf"(?<={_CJK_OR_WIDE}){_SPACE}+|{_SPACE}+(?={_CJK_OR_WIDE})"
    rf"|(?<=[{_COMPARISON}]){_SPACE}+|(?<=\d){_SPACE}+(?=[%‰])"
)


def fold_spaces(text: str) -> str:
    """Remove spaces next to Chinese text: ``130.9 万人`` → ``130.9万人``, ``2023 年`` → ``2023年``.

    Spaces between two Latin words or numbers stay (single). Tabs are kept: they separate
    table cells. Lines are trimmed of spaces at both ends.
    """
    lines = []
    for line in text.split("\n"):
        line = _SPACE_NEXT_TO_CJK.sub("", line)
        line = re.sub(f"{_SPACE}{{2,}}", " ", line)
        lines.append(line.strip(" \u00a0\u3000"))
    return "\n".join(lines)


_ASCII_TO_WIDE = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！"}
_ASCII_PUNCT_BY_CJK = re.compile(rf"(?<={_CJK_OR_WIDE})[,:;?!]|[,:;?!](?={_CJK_OR_WIDE})")
_ASCII_PARENS = re.compile(r"\(([^()\n]{0,80})\)")
_CJK_CHAR = re.compile(f"[{_CJK}]")


def normalize_punctuation(text: str) -> str:
    """ASCII ``, : ; ? !`` and ``( )`` in Chinese context become full-width.

    Mixed punctuation is common in the extracted text (one document uses ASCII throughout);
    making it uniform lets one set of patterns find headings, clauses and sentence ends.
    ASCII punctuation between Latin letters or digits (``1,000``, ``12:30``) is left alone.
    """
    text = _ASCII_PUNCT_BY_CJK.sub(lambda m: _ASCII_TO_WIDE[m.group(0)], text)

    def parens(match: re.Match[str]) -> str:
        inner = match.group(1)
        start = match.start()
        before = match.string[start - 1] if start > 0 else ""
        if _CJK_CHAR.search(inner) or _CJK_CHAR.match(before or " "):
            return f"（{inner}）"
        return match.group(0)

    text = _ASCII_PARENS.sub(parens, text)
    # Unpaired brackets left by a page break: judge by the neighbouring character.
    text = re.sub(rf"\((?={_CJK_OR_WIDE})", "（", text)
    return re.sub(rf"(?<={_CJK_OR_WIDE})\)", "）", text)


def ends_sentence(line: str) -> bool:
    """Whether a line ends a sentence or clause, so the next line cannot continue it."""
    if not line:
        return True
    last = line[-1]
    if last in SENTENCE_FINAL:
        return True
    # “…。” ends a sentence; “老人住老房危房” does not.
    return last in _CLOSING_QUOTES and len(line) > 1 and line[-2] in SENTENCE_FINAL


def _is_title_like(line: str) -> bool:
    """Short and without clause punctuation: a title, an issuer or a signature line."""
    return len(line) <= 60 and not re.search(r"[，。；：,;:！？]", line)


def _is_terminal_line(line: str) -> bool:
    """Lines that close a block of the notice header and are never continued."""
    return bool(
        DOC_NUMBER_LINE.match(line)
        or DATE_LINE.match(line)
        or ISSUED_LINE.search(line)
        or (line.startswith("关于") and line.endswith(("通知", "意见", "决定", "办法", "方案")))
        or line.endswith("文件")
    )


def _strip_marker(line: str) -> str:
    for pattern in (L1_HEADING, L2_HEADING, ARTICLE_HEADING, CHAPTER_HEADING, APPENDIX_LINE):
        match = pattern.match(line)
        if match:
            return line[match.end() :]
    return line


def _starts_block(line: str) -> bool:
    return (
        is_heading_start(line)
        or is_table_row(line)
        or bool(DOC_NUMBER_LINE.match(line))
        or bool(DATE_LINE.match(line))
        or line.startswith("关于印发")
    )


def _is_open_table_row(line: str) -> bool:
    """A markdown row cut off at a page end: it has no closing ``|`` yet."""
    return line.startswith("|") and not line.endswith("|") and "\t" not in line


def continues(previous: str, line: str, *, after_blank: bool) -> bool:
    """Whether ``line`` is the rest of the sentence that ``previous`` broke off.

    Page breaks in the extracted text leave a sentence split across a blank line
    ("对收入稳定\\n\\n持续半年以上"). A short line without punctuation before a blank line is
    a title instead ("…工作要点\\n\\n为切实做好…") and stays on its own.
    """
    if ends_sentence(previous) or _starts_block(line) or _is_terminal_line(previous):
        return False
    if is_table_row(previous):
        return _is_open_table_row(previous)
    if previous[-1] in "，、,":
        return True  # broken in the middle of an enumeration or clause
    if is_heading_start(previous) and not ITEM_HEADING.match(previous):
        # 一、… / （一）… / 附件 headings are one line; a long one broken at a page end
        # still carries clause punctuation after its marker.
        return not _is_title_like(_strip_marker(previous))
    if not after_blank:
        return True  # a soft line wrap inside one paragraph
    return bool(ITEM_HEADING.match(previous)) or not _is_title_like(previous) or len(previous) >= 50


def join_broken_lines(text: str) -> str:
    """Join lines that a page break or soft wrap split; keep one blank line between blocks."""
    out: list[str] = []
    blank_before = False
    for line in text.split("\n"):
        if not line.strip():
            blank_before = bool(out)
            continue
        previous = out[-1] if out else ""
        if previous and continues(previous, line, after_blank=blank_before):
            latin_gap = previous[-1].isascii() and previous[-1].isalpha() and line[0].isascii()
            out[-1] = previous + (" " if latin_gap and line[0].isalpha() else "") + line
        else:
            if blank_before:
                out.append("")
            out.append(line)
        blank_before = False
    return "\n".join(out)


def _drop_blank_runs(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


CLEANING_STEPS: tuple[Callable[[str], str], ...] = (
    normalize_newlines,
    strip_markdown,
    replace_latex,
    normalize_doc_numbers,
    fold_spaces,
    normalize_punctuation,
    join_broken_lines,
    _drop_blank_runs,
)


def clean_text(raw: str) -> str:
    """Run every cleaning step: the text the chunker and the header reader work on."""
    text = raw
    for step in CLEANING_STEPS:
        text = step(text)
    return text
