"""The index version answering now, as the admins' knowledge console shows it.

Implements :class:`~cadrebot.handlers.ports.IndexInspector`: the documents (catalog facts,
passage counts, which are waiting for the next build), a document's passages exactly as the
indexer split them, and a hit test with every score the search computed. Reads what the
searcher has loaded, so the console shows what the bot answers from, not what is on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cadrebot.handlers.ports import (
    CURATED_DOC_ID,
    ChunkInfo,
    DocumentInfo,
    IndexDescription,
    PassageHit,
)
from cadrebot.indexer.builder import discover_documents
from cadrebot.indexer.catalog import CatalogError, read_catalog
from cadrebot.indexer.corrections import curated_title, is_curated
from cadrebot.indexer.published import overview_of
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.store import IndexNotFoundError, IndexVersion
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

log = logging.getLogger(__name__)


def table_cells(chunk: Chunk) -> tuple[tuple[str, str], ...]:
    """A table row's (column header, value) pairs: the chunker writes 列：值；列：值."""
    if chunk.kind != ChunkKind.TABLE_ROW:
        return ()
    cells = []
    for cell in chunk.text.split("；"):
        name, sep, value = cell.partition("：")
        cells.append((name.strip(), value.strip()) if sep else ("", cell.strip()))
    return tuple(c for c in cells if c[0] or c[1])


def _info(meta: DocumentMeta, chunks: int, *, indexed: bool, in_folder: bool) -> DocumentInfo:
    return DocumentInfo(
        doc_id=meta.doc_id,
        source=meta.source,
        title=meta.title or Path(meta.source).stem,
        doc_number=meta.doc_number,
        level=meta.level,
        region=meta.region,
        date=meta.date,
        chunks=chunks,
        indexed=indexed,
        in_folder=in_folder,
        curated=meta.doc_id == CURATED_DOC_ID,
    )


class IndexInspection:
    def __init__(self, searcher: HybridSearcher, knowledge_dir: Path, catalog_path: Path) -> None:
        self._searcher = searcher
        self._knowledge_dir = knowledge_dir
        self._catalog_path = catalog_path

    def _loaded(self) -> IndexVersion | None:
        try:
            return self._searcher.index
        except IndexNotFoundError:  # no index built yet (or none usable)
            return None

    def describe(self) -> IndexDescription:
        index = self._loaded()
        try:
            files = [p.name for p in discover_documents(self._knowledge_dir)]
        except FileNotFoundError:
            files = []
        try:
            catalog = read_catalog(self._catalog_path)
        except CatalogError as error:
            log.warning("catalog not read for the knowledge console: %s", error)
            catalog = {}
        documents: list[DocumentInfo] = []
        indexed_sources: set[str] = set()
        if index is not None:
            entries = index.manifest.get("documents", {})
            for doc_id, meta in index.documents.items():
                count = int(entries.get(doc_id, {}).get("chunks", 0))
                in_folder = meta.source in files or doc_id == CURATED_DOC_ID
                documents.append(_info(meta, count, indexed=True, in_folder=in_folder))
                indexed_sources.add(meta.source)
        for name in files:
            if name not in indexed_sources:
                meta = catalog.get(name) or DocumentMeta(Path(name).stem, "", source=name)
                documents.append(_info(meta, 0, indexed=False, in_folder=True))
        # Folder order (file name), the corrections last.
        documents.sort(key=lambda d: (d.curated, d.source))
        overview = overview_of(index.manifest if index is not None else None)
        return IndexDescription(
            version=index.name if index is not None else None,
            built_at=overview.built_at,
            chunk_count=index.chunk_count if index is not None else 0,
            documents=tuple(documents),
        )

    def chunks(self, doc_id: str) -> list[ChunkInfo] | None:
        index = self._loaded()
        if index is None or doc_id not in index.documents:
            return None
        return [
            ChunkInfo(
                chunk_id=c.chunk_id,
                position=c.position,
                kind=str(c.kind),
                section=(c.extra.get("question", ""),) if is_curated(c) else c.section,
                responsible=c.responsible,
                text=c.text,
                cells=table_cells(c),
                part=c.extra.get("part", ""),
            )
            for c in index.chunks
            if c.doc_id == doc_id
        ]

    def passages(self, query: str, top_k: int = 5) -> list[PassageHit]:
        if self._loaded() is None:
            return []
        return [
            PassageHit(
                doc_id=hit.meta.doc_id,
                doc_title=curated_title(hit.chunk) if is_curated(hit.chunk) else hit.meta.title,
                doc_number=hit.meta.doc_number,
                section=(
                    hit.chunk.extra.get("question", "")
                    if is_curated(hit.chunk)
                    else hit.chunk.section_label()
                ),
                text=hit.chunk.text,
                chunk_id=hit.chunk.chunk_id,
                score=hit.score,
                dense=hit.dense,
                lexical=hit.lexical,
                coverage=hit.coverage,
                best_sentence=hit.best_sentence,
                curated=is_curated(hit.chunk),
            )
            for hit in self._searcher.search(query, top_k=top_k)
        ]
