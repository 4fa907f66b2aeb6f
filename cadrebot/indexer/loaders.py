"""Read the text out of a policy document file (.txt, .md, .docx, .pdf).

The text is returned raw; cleaning and chunking happen later. Word tables come out as
tab-separated lines, the same shape as the tables in the extracted seed documents, so one
table parser serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".docx", ".pdf"})
SUPPORTED_LABEL = "、".join(sorted(SUPPORTED_SUFFIXES))


class DocumentLoadError(ValueError):
    """A document that cannot be read; the message is Chinese and names the file."""


class UnsupportedDocumentError(DocumentLoadError):
    """The file type is not one the knowledge base reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"无法读取文件“{path.name}”：不支持该文件类型。目前只支持 {SUPPORTED_LABEL} 文件。"
        )
        self.path = path


_TEXT_CONTROLS = frozenset("\t\n\r\f\v")


def _looks_binary(text: str) -> bool:
    """Control characters a text file does not contain: an image or a program renamed
    .txt (GB18030 decodes many byte strings, so decoding alone does not tell)."""
    sample = text[:20000]
    controls = sum(1 for ch in sample if ch < " " and ch not in _TEXT_CONTROLS)
    return "\x00" in sample or controls > len(sample) // 100


def _decode(data: bytes, path: Path) -> str:
    # utf-8-sig also reads plain UTF-8; GB18030 covers GBK/GB2312 files saved by Chinese
    # Windows tools, which are common for government documents.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_binary(text):
            raise DocumentLoadError(
                f"无法读取文件“{path.name}”：文件内容不是文字（可能是改了扩展名的其他文件），"
                "请上传文本、Word 或 PDF 文件。"
            )
        return text
    raise DocumentLoadError(
        f"无法读取文件“{path.name}”：文字编码无法识别，请另存为 UTF-8 编码的文本文件后重试。"
    )


def _cell_text(cell: Any) -> str:
    return " ".join(cell.text.split())


def _table_lines(table: Any) -> list[str]:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A horizontally merged cell is returned once per grid column it spans.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(_cell_text(cell))
        if any(cells):
            lines.append("\t".join(cells))
    return lines


def _load_docx(path: Path) -> str:
    import docx  # imported here: only needed for Word files
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except Exception as error:  # python-docx raises several unrelated types for bad files
        raise DocumentLoadError(
            f"无法读取文件“{path.name}”：不是有效的 Word（.docx）文件或文件已损坏。"
        ) from error
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks.append("\n".join(_table_lines(block)))
        else:
            blocks.append(block.text)
    return "\n\n".join(b for b in blocks if b.strip())


def _load_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, OSError, ValueError, KeyError) as error:
        raise DocumentLoadError(
            f"无法读取文件“{path.name}”：PDF 文件已损坏或设置了密码保护。"
        ) from error
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentLoadError(
            f"无法读取文件“{path.name}”：PDF 中没有可提取的文字（可能是扫描件），"
            "请提供文字版 PDF 或 Word 文件。"
        )
    return text


def load_text(path: Path) -> str:
    """The raw text of a supported document; raises :class:`DocumentLoadError` subclasses."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedDocumentError(path)
    if suffix in (".txt", ".md"):
        return _decode(path.read_bytes(), path)
    if suffix == ".docx":
        return _load_docx(path)
    return _load_pdf(path)
