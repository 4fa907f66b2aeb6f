"""Document metadata: the operator's catalog (knowledge/catalog.toml) and the notice header.

A catalog entry is authoritative; whatever it leaves empty is read from the document's own
header (issuer line, 文号, 关于印发《…》的通知, signature date), and the file name is the last
resort for the title. A document without a catalog entry therefore still indexes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from pathlib import Path

from cadrebot.indexer.chunking import is_title_like, split_notice_header
from cadrebot.indexer.cleaning import (
    DATE_LINE,
    DOC_NUMBER,
    DOC_NUMBER_LINE,
    ISSUED_LINE,
    clean_text,
)
from cadrebot.indexer.loaders import load_text
from cadrebot.indexer.types import Document, DocumentMeta

CATALOG_FIELDS = ("title", "issuer", "doc_number", "date", "level", "region")


class CatalogError(ValueError):
    """catalog.toml cannot be used; the message is Chinese and says what to fix."""


def read_catalog(path: Path) -> dict[str, DocumentMeta]:
    """Catalog entries keyed by file name; a missing catalog file is an empty catalog.

    Each TOML table is named after a file in the knowledge folder and may set title, issuer,
    doc_number, date, level and region. TOML dates and numbers are accepted as text.
    """
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(f"目录文件“{path.name}”格式有误：{error}") from error
    catalog: dict[str, DocumentMeta] = {}
    for file_name, entry in data.items():
        if not isinstance(entry, dict):
            raise CatalogError(
                f'目录文件“{path.name}”中的“{file_name}”应当是一个表（["文件名"]）。'
            )
        values = {key: _as_text(entry.get(key, "")) for key in CATALOG_FIELDS}
        catalog[file_name] = DocumentMeta(doc_id=Path(file_name).stem, source=file_name, **values)
    return catalog


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value).strip()


# --- reading the notice header -------------------------------------------------------------

_ISSUER_SUFFIX = re.compile(
    r"(领导小组|委员会|人民政府|办公室|办公厅|人民政府办公室|党委|局|厅|委)$"
)
_NOTICE_TITLE = re.compile(r"^关于印发(?:《(?P<quoted>.+)》|(?P<plain>.+?))的(?:通知|决定)$")
_REGION = re.compile(r"^(?:中共)?(?P<region>[\u4e00-\u9fff]{2,8}?(?:自治区|新区|省|市|县|区))")
_LEVEL_BY_SUFFIX = (
    ("自治区", "省"),
    ("新区", "区"),
    ("省", "省"),
    ("市", "市"),
    ("县", "县"),
    ("区", "区"),
)
_LEVEL_IN_TITLE = (("全省", "省"), ("全市", "市"), ("全县", "县"), ("全区", "区"))


def _iso_date(year: str, month: str, day: str) -> str:
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _region_and_level(*names: str) -> tuple[str, str]:
    for name in names:
        match = _REGION.match(name) if name else None
        if match:
            region = match.group("region")
            for suffix, level in _LEVEL_BY_SUFFIX:
                if region.endswith(suffix):
                    return region, level
    for name in names:
        for marker, level in _LEVEL_IN_TITLE:
            if marker in name:
                return "", level
    return "", ""


def metadata_from_header(text: str, file_name: str) -> DocumentMeta:
    """Metadata read from a document's notice header, the file name filling in the title."""
    lines = [line for line in clean_text(text).split("\n") if line.strip()]
    header, _ = split_notice_header(lines)
    if not header:
        header = lines[:1]

    doc_number = ""
    for line in header:
        match = DOC_NUMBER_LINE.match(line)
        if match:
            doc_number = f"{match.group(1)}〔{match.group(2)}〕{match.group(3)}号"
            break

    date = ""
    for line in header:
        match = DATE_LINE.match(line) or ISSUED_LINE.search(line)
        if match:
            date = _iso_date(*match.groups())
            break
    if not date and doc_number:
        year = DOC_NUMBER.search(doc_number)
        date = year.group(2) if year else ""

    issuer = ""
    for line in header:
        if line.endswith("文件") and len(line) > 2 and is_title_like(line):
            issuer = line[: -len("文件")]
            break
        if is_title_like(line) and _ISSUER_SUFFIX.search(line) and not line.startswith("关于"):
            issuer = line
            break

    title = ""
    for line in header:
        match = _NOTICE_TITLE.match(line)
        if match:
            title = match.group("quoted") or match.group("plain") or ""
            break
    if not title:
        candidates = [
            line
            for line in header
            if is_title_like(line)
            and line != issuer
            and not line.endswith("文件")
            and not DOC_NUMBER_LINE.match(line)
            and not DATE_LINE.match(line)
            and not ISSUED_LINE.search(line)
        ]
        title = candidates[-1] if candidates else ""
    title = title.strip() or Path(file_name).stem

    region, level = _region_and_level(issuer, title)
    return DocumentMeta(
        doc_id=Path(file_name).stem,
        title=title,
        issuer=issuer,
        doc_number=doc_number,
        date=date,
        level=level,
        region=region,
        source=file_name,
    )


def load_document(path: Path, catalog: dict[str, DocumentMeta]) -> Document:
    """Read one document; its catalog entry wins, the header fills what the entry leaves out."""
    data = path.read_bytes()
    text = load_text(path)
    from_header = metadata_from_header(text, path.name)
    entry = catalog.get(path.name)
    if entry is None:
        meta = from_header
    else:
        merged = {
            name: getattr(entry, name) or getattr(from_header, name) for name in CATALOG_FIELDS
        }
        meta = dataclasses.replace(from_header, **merged)
    return Document(meta=meta, text=text, content_hash=hashlib.sha256(data).hexdigest())
