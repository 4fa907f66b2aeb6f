"""Scoring of the knowledge core on a question set, exactly as eval/README.md defines it.

Items with a ``history`` (earlier messages of the same chat) or an ``action`` (the command
the reply must offer) are asked through the real conversation core, in a fresh chat each,
so follow-ups and offered forms are scored as a user meets them; the others straight from
the answerer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    kind: str = ""
    history: list[str] = field(default_factory=list)
    action: str = ""
    answer_only: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalItem:
        return cls(
            id=str(data.get("id", "")),
            question=data["question"],
            must=[list(g) for g in data.get("must", [])],
            also=list(data.get("also", [])),
            negative=bool(data.get("negative", False)),
            kind=str(data.get("kind", "")),
            history=[str(m) for m in data.get("history", [])],
            action=str(data.get("action", "")),
            answer_only=bool(data.get("answer_only", False)),
        )

    @property
    def conversational(self) -> bool:
        """Scored through the conversation core rather than the answerer alone."""
        return bool(self.history or self.action)


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


@dataclass(frozen=True)
class ChatReply:
    """The last reply of a replayed chat: the policy answer it gave (None when the core
    answered otherwise) and the commands it offered (as actions or in its text)."""

    answer: PolicyAnswer | None
    text: str
    offered: tuple[str, ...] = ()


class Conversation(Protocol):
    def replay(self, history: Sequence[str], question: str) -> ChatReply:
        """``history`` then ``question`` in a fresh chat of the real conversation core."""
        ...


@dataclass
class ItemResult:
    item: EvalItem
    rank: int | None  # 1-based rank of the first satisfying passage in the top 10
    answer: PolicyAnswer
    offered: tuple[str, ...] = ()

    @property
    def answer_ok(self) -> bool:
        return self.answer.found and satisfies_must(self.answer.answer, self.item.must)

    @property
    def action_ok(self) -> bool:
        return self.item.action in self.offered


def _not_answered(question: str, text: str) -> PolicyAnswer:
    """A reply that was no policy answer (the core asked back, offered a form, ...)."""
    return PolicyAnswer(question, False, text)


def run_eval(
    items: Sequence[EvalItem],
    searcher: Searcher,
    answerer: Answerer,
    conversation: Conversation | None = None,
) -> tuple[dict[str, Any], list[ItemResult]]:
    results: list[ItemResult] = []
    for item in items:
        rank = None
        if not item.negative and not item.answer_only:
            hits = searcher.search(item.question, top_k=10)
            for r, hit in enumerate(hits, 1):
                if passage_satisfies(hit.chunk.text, item):
                    rank = r
                    break
        if item.conversational and conversation is not None:
            reply = conversation.replay(item.history, item.question)
            answer = reply.answer or _not_answered(item.question, reply.text)
            results.append(ItemResult(item, rank, answer, reply.offered))
        else:
            results.append(ItemResult(item, rank, answerer.answer(item.question)))
    positives = [r for r in results if not r.item.negative]
    negatives = [r for r in results if r.item.negative]
    ranked = [r for r in positives if not r.item.answer_only]
    n = max(1, len(positives))
    n_ranked = max(1, len(ranked))

    def recall(k: int) -> float:
        return sum(1 for r in ranked if r.rank is not None and r.rank <= k) / n_ranked

    latencies = np.array([r.answer.latency_ms for r in results]) if results else np.zeros(1)
    metrics: dict[str, Any] = {
        "n": len(results),
        "recall@1": round(recall(1), 4),
        "recall@3": round(recall(3), 4),
        "recall@5": round(recall(5), 4),
        "mrr": round(sum(1 / r.rank for r in ranked if r.rank) / n_ranked, 4),
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
    with_action = [r for r in results if r.item.action]
    if with_action:
        metrics["action_accuracy"] = round(
            sum(1 for r in with_action if r.action_ok) / len(with_action), 4
        )
    kinds = sorted({r.item.kind for r in results if r.item.kind})
    if kinds:
        metrics["by_kind"] = {
            kind: _kind_metrics([r for r in results if r.item.kind == kind]) for kind in kinds
        }
    return metrics, results


def _kind_metrics(results: Sequence[ItemResult]) -> dict[str, Any]:
    """Accuracy within one kind: a negative item counts as right when rejected."""
    right = sum(1 for r in results if (not r.answer.found if r.item.negative else r.answer_ok))
    return {"n": len(results), "answer_accuracy": round(right / len(results), 4)}
