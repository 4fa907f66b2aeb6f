"""The knowledge folder: the policy documents the index is built from, and their catalog.

Implements :class:`~cadrebot.handlers.ports.KnowledgeFolder` for the administration. An
uploaded document is checked (name, type, size, readable text), moved in under its own name,
and given a catalog entry read from its notice header unless the operator wrote one. The
catalog is rewritten atomically and never into something the indexer cannot read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import tomllib
import uuid
from pathlib import Path

from cadrebot.handlers.ports import KnowledgeError, StoredDocument
from cadrebot.indexer.catalog import CATALOG_FIELDS, metadata_from_header
from cadrebot.indexer.loaders import (
    SUPPORTED_LABEL,
    SUPPORTED_SUFFIXES,
    DocumentLoadError,
    load_text,
)

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.toml"
RESERVED_NAMES = frozenset({CATALOG_FILE, "readme.md"})
_SAFE_NAME = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]+$")


def safe_file_name(name: str) -> str:
    """The upload's name if it may be stored as is; raises :class:`KnowledgeError` otherwise."""
    name = name.strip()
    base = Path(name).name
    suffix = Path(base).suffix.lower()
    if not base or base != name or not _SAFE_NAME.match(base) or base.startswith("."):
        raise KnowledgeError(
            "文件名不合法，请改用普通的中文或英文文件名（不含 / \\ : * ? 等符号）后重新上传。"
        )
    if base.lower() in RESERVED_NAMES:
        raise KnowledgeError(f"“{base}”是系统保留的文件名，请改名后重新上传。")
    if suffix not in SUPPORTED_SUFFIXES:
        raise KnowledgeError(
            f"不支持“{suffix or '无扩展名'}”类型的文件。目前只支持 {SUPPORTED_LABEL} 文件。"
        )
    if len(base.encode("utf-8")) > 200:
        raise KnowledgeError("文件名太长，请缩短后重新上传。")
    return base


def _toml_string(value: str) -> str:
    # JSON string escapes (\", \\, \n, \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def catalog_entry(file_name: str, values: dict[str, str]) -> str:
    lines = [f"[{_toml_string(file_name)}]"]
    lines += [f"{key} = {_toml_string(values.get(key, ''))}" for key in CATALOG_FIELDS]
    return "\n".join(lines) + "\n"


def without_catalog_entry(text: str, file_name: str) -> str:
    """The catalog text with the table for ``file_name`` (header to next header) removed."""
    header = f"[{_toml_string(file_name)}]"
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == header
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _is_document(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in SUPPORTED_SUFFIXES
        and not path.name.startswith(".")
        and path.name.lower() not in RESERVED_NAMES
    )


class DocumentFolder:
    """The knowledge folder on disk (``settings.knowledge_dir``)."""

    def __init__(self, knowledge_dir: Path, *, max_upload_bytes: int) -> None:
        self._dir = knowledge_dir
        self._max_upload_bytes = max_upload_bytes
        self._lock = threading.Lock()  # file moves and catalog rewrites, one at a time

    @property
    def max_upload_bytes(self) -> int:
        return self._max_upload_bytes

    @property
    def catalog_path(self) -> Path:
        return self._dir / CATALOG_FILE

    def document_names(self) -> list[str]:
        return sorted(p.name for p in self._dir.iterdir() if _is_document(p))

    # ------------------------------------------------------------------ upload

    def check_upload(self, file_name: str, size: int | None) -> str:
        name = safe_file_name(file_name)
        if size is not None and size > self._max_upload_bytes:
            raise KnowledgeError(
                f"文件太大（{_megabytes(size)}），上限为 {_megabytes(self._max_upload_bytes)}。"
                "请压缩图片或拆分文件后重新上传。"
            )
        stem = Path(name).stem
        clash = [
            p.name
            for p in self._dir.glob(f"{glob_escape(stem)}.*")
            if p.suffix.lower() in SUPPORTED_SUFFIXES and p.name != name
        ]
        if clash:
            raise KnowledgeError(
                f"知识库中已有同名文件“{clash[0]}”。如要替换，请先发送 /kbremove {clash[0]}，"
                "或把新文件改名后上传。"
            )
        return name

    def store_upload(self, file_name: str, downloaded: Path) -> StoredDocument:
        name = self.check_upload(file_name, downloaded.stat().st_size)
        staged = self._dir / f".upload-{uuid.uuid4().hex}{Path(name).suffix.lower()}"
        shutil.copyfile(downloaded, staged)
        try:
            text = load_text(staged)
        except DocumentLoadError as error:
            staged.unlink(missing_ok=True)
            raise KnowledgeError(error.args[0].replace(staged.name, name)) from None
        if len(text.strip()) < 20:
            staged.unlink(missing_ok=True)
            raise KnowledgeError(f"文件“{name}”中几乎没有文字内容，请检查后重新上传。")
        meta = metadata_from_header(text, name)
        target = self._dir / name
        with self._lock:
            twin = self._same_content(staged, other_than=name)
            if twin is not None:
                staged.unlink(missing_ok=True)
                raise KnowledgeError(
                    f"知识库中已有内容完全相同的文件“{twin}”，无需重复上传。"
                    f"如要改名，请先发送 /kbremove {twin}，再上传。"
                )
            replaced = target.exists()
            os.replace(staged, target)
            self._add_catalog_entry(name, {k: getattr(meta, k) for k in CATALOG_FIELDS})
        log.info("knowledge document stored: %s (replaced=%s)", name, replaced)
        return StoredDocument(name, replaced, meta.title)

    def _same_content(self, path: Path, *, other_than: str) -> str | None:
        """The document (other than ``other_than``) whose bytes equal ``path``'s, if any:
        indexed twice, its passages would crowd the answers out twice over."""
        digest = _sha256(path)
        size = path.stat().st_size
        for name in self.document_names():
            other = self._dir / name
            if name != other_than and other.stat().st_size == size and _sha256(other) == digest:
                return name
        return None

    def _add_catalog_entry(self, name: str, values: dict[str, str]) -> None:
        current = self.catalog_path.read_text("utf-8") if self.catalog_path.exists() else ""
        try:
            existing = tomllib.loads(current) if current else {}
        except tomllib.TOMLDecodeError:
            log.warning("catalog.toml does not parse; not adding an entry for %s", name)
            return
        if name in existing:
            return  # an operator's entry wins over what the header says
        separator = "" if not current or current.endswith("\n\n") else "\n"
        if current and not current.endswith("\n"):
            separator = "\n\n"
        updated = current + separator + catalog_entry(name, values)
        tomllib.loads(updated)  # never write a catalog the indexer cannot read
        _write_atomic(self.catalog_path, updated)

    # ------------------------------------------------------------------ remove

    def remove(self, file_name: str) -> None:
        path = self._dir / file_name
        if file_name not in self.document_names():
            raise KnowledgeError(f"知识库中没有名为“{file_name}”的文件。发送 /kb 查看文件列表。")
        with self._lock:
            path.unlink()
            if self.catalog_path.exists():
                current = self.catalog_path.read_text("utf-8")
                updated = without_catalog_entry(current, path.name)
                if updated != current:
                    _write_atomic(self.catalog_path, updated)
        log.info("knowledge document removed: %s", path.name)
