"""Scoring of the knowledge core on a question set, exactly as eval/README.md defines it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cadrebot.handlers.ports import PolicyAnswer

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Compare with all whitespace removed: the documents write "130.9 万人"."""
    return _WS.sub("", text)


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    must: list[list[str]]
    also: list[str]
    negative: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalItem:
        return cls(
            id=str(data.get("id", "")),
            question=data["question"],
            must=[list(g) for g in data.get("must", [])],
            also=list(data.get("also", [])),
            negative=bool(data.get("negative", False)),
        )


def load_items(path: Path) -> list[EvalItem]:
    with path.open(encoding="utf-8") as fh:
        return [EvalItem.from_json(json.loads(line)) for line in fh if line.strip()]


def satisfies_must(text: str, must: Sequence[Sequence[str]]) -> bool:
    flat = squash(text)
    return all(any(squash(alt) in flat for alt in group) for group in must)


def passage_satisfies(text: str, item: EvalItem) -> bool:
    flat = squash(text)
    return satisfies_must(text, item.must) and all(squash(w) in flat for w in item.also)


class Searcher(Protocol):
    def search(self, query: str, top_k: int = 5) -> Sequence[Any]: ...


class Answerer(Protocol):
    def answer(self, question: str) -> PolicyAnswer: ...


@dataclass
class ItemResult:
    item: EvalItem
    rank: int | None  # 1-based rank of the first satisfying passage in the top 10
    answer: PolicyAnswer

    @property
    def answer_ok(self) -> bool:
        return self.answer.found and satisfies_must(self.answer.answer, self.item.must)


def run_eval(
    items: Sequence[EvalItem], searcher: Searcher, answerer: Answerer
) -> tuple[dict[str, Any], list[ItemResult]]:
    results: list[ItemResult] = []
    for item in items:
        rank = None
        if not item.negative:
            hits = searcher.search(item.question, top_k=10)
            for r, hit in enumerate(hits, 1):
                if passage_satisfies(hit.chunk.text, item):
                    rank = r
                    break
        results.append(ItemResult(item, rank, answerer.answer(item.question)))
    positives = [r for r in results if not r.item.negative]
    negatives = [r for r in results if r.item.negative]
    n = max(1, len(positives))

    def recall(k: int) -> float:
        return sum(1 for r in positives if r.rank is not None and r.rank <= k) / n

    latencies = np.array([r.answer.latency_ms for r in results]) if results else np.zeros(1)
    metrics: dict[str, Any] = {
        "n": len(results),
        "recall@1": round(recall(1), 4),
        "recall@3": round(recall(3), 4),
        "recall@5": round(recall(5), 4),
        "mrr": round(sum(1 / r.rank for r in positives if r.rank) / n, 4),
        "answer_accuracy": round(sum(1 for r in positives if r.answer_ok) / n, 4),
        "found_rate": round(sum(1 for r in positives if r.answer.found) / n, 4),
        "negative_rejection": round(
            sum(1 for r in negatives if not r.answer.found) / len(negatives), 4
        )
        if negatives
        else None,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
    }
    return metrics, results
