"""The published index as the administration sees it: build, switch, describe, hit test.

Implements :class:`~cadrebot.handlers.ports.KnowledgeIndex` over :class:`IndexBuilder` (which
writes a new version next to the serving one) and :class:`HybridSearcher` (which answers
from the version it loaded until told to switch).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cadrebot.handlers.ports import (
    BuildProgress,
    BuildSummary,
    IndexedDocument,
    IndexHit,
    IndexOverview,
    KnowledgeError,
)
from cadrebot.indexer.builder import BuildReport, IndexBuilder
from cadrebot.indexer.loaders import DocumentLoadError
from cadrebot.indexer.search import HybridSearcher

_BUILT_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # manifest "built_at", as IndexBuilder writes it


def build_summary(report: BuildReport) -> BuildSummary:
    return BuildSummary(
        version=report.version,
        documents=report.documents,
        chunks=report.chunks,
        embedded=report.embedded,
        reused=report.reused,
        seconds=report.seconds,
        up_to_date=report.up_to_date,
        added=tuple(report.added),
        changed=tuple(report.changed),
        removed=tuple(report.removed),
    )


def overview_of(manifest: dict[str, Any] | None) -> IndexOverview:
    """What a version's manifest says about it (an empty overview for no version)."""
    if manifest is None:
        return IndexOverview()
    try:
        built_at: datetime | None = datetime.strptime(
            manifest.get("built_at", ""), _BUILT_AT_FORMAT
        )
    except ValueError:
        built_at = None
    documents = tuple(
        IndexedDocument(
            source=entry["meta"].get("source", doc_id),
            title=entry["meta"].get("title", ""),
            doc_number=entry["meta"].get("doc_number", ""),
            content_hash=str(entry.get("hash", "")),
            chunks=int(entry.get("chunks", 0)),
        )
        for doc_id, entry in manifest.get("documents", {}).items()
    )
    return IndexOverview(
        version=manifest.get("version"),
        built_at=built_at,
        chunk_count=int(manifest.get("chunk_count", 0)),
        documents=documents,
    )


class PublishedIndex:
    def __init__(self, builder: IndexBuilder, searcher: HybridSearcher) -> None:
        self._builder = builder
        self._searcher = searcher

    def build(self, progress: BuildProgress | None = None) -> BuildSummary:
        try:
            report = self._builder.build(progress=progress)
        except DocumentLoadError as error:
            raise KnowledgeError(error.args[0]) from None
        return build_summary(report)

    def reload_if_changed(self) -> bool:
        return self._searcher.reload_if_changed()

    def overview(self) -> IndexOverview:
        return overview_of(self._builder.store.current_manifest())

    def hit_test(self, query: str, top_k: int = 5) -> list[IndexHit]:
        return [
            IndexHit(
                score=hit.score,
                dense=hit.dense,
                lexical=hit.lexical,
                coverage=hit.coverage,
                doc_title=hit.meta.title,
                section=hit.chunk.section_label(),
                text=hit.chunk.text,
            )
            for hit in self._searcher.search(query, top_k=top_k)
        ]
