"""Prometheus metrics of a bot worker (prometheus-client).

API::

    metrics = BotMetrics()                       # or BotMetrics(registry) to share one
    metrics.update_received("message")           # every update taken from the webhook
    with metrics.answer_timer() as answer:       # a policy question, timed
        reply = answerer.answer(question)
        answer.found = reply.found               # counts found / not found
    metrics.case_filed("risk_report")
    metrics.error("handler")                     # an update that failed
    metrics.index_loaded("v2026…")               # the index version now serving
    body, content_type = metrics.exposition()    # the /metrics response

Metric names (``cadrebot_`` prefix)::

    cadrebot_updates_total{kind}                 counter
    cadrebot_answer_latency_seconds              histogram
    cadrebot_answers_total{found="true|false"}   counter (found rate = true / all)
    cadrebot_cases_filed_total{case_type}        counter
    cadrebot_errors_total{where}                 counter
    cadrebot_index_info{version}                 gauge, 1 for the version serving

Nothing is registered at import time: every :class:`BotMetrics` registers its metrics in the
registry it is given, or in a private :class:`~prometheus_client.CollectorRegistry` when none
is given (tests make as many as they like). Each worker process exposes its own metrics and
Prometheus scrapes every worker (see docs/architecture.md); no multiprocess mode is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

NAMESPACE = "cadrebot"
# Seconds. A search answers in tens of milliseconds; the target for a reply is 300 ms and a
# question that waits behind an index rebuild may take seconds.
ANSWER_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)


@dataclass
class AnswerOutcome:
    """Filled in by the code inside :meth:`BotMetrics.answer_timer`."""

    found: bool | None = None


class BotMetrics:
    """The metric objects of one worker, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            "updates", "Updates received, by kind.", ["kind"], namespace=NAMESPACE, registry=r
        )
        self.answer_latency = Histogram(
            "answer_latency_seconds",
            "Time to answer one policy question.",
            namespace=NAMESPACE,
            buckets=ANSWER_LATENCY_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "answers",
            "Policy questions answered, by whether the knowledge base had the answer.",
            ["found"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.cases_filed = Counter(
            "cases_filed", "Cases filed, by type.", ["case_type"], namespace=NAMESPACE, registry=r
        )
        self.errors = Counter(
            "errors", "Errors, by where they happened.", ["where"], namespace=NAMESPACE, registry=r
        )
        self.index_info = Gauge(
            "index_info",
            "The index version this worker answers from (value 1).",
            ["version"],
            namespace=NAMESPACE,
            registry=r,
        )
        # Both label values exist from the start, so a found rate is defined before the
        # first miss (Prometheus shows no series for a label value never used).
        for found in ("true", "false"):
            self.answers.labels(found=found)

    def update_received(self, kind: str) -> None:
        self.updates.labels(kind=kind).inc()

    def answered(self, seconds: float, *, found: bool) -> None:
        self.answer_latency.observe(seconds)
        self.answers.labels(found=str(found).lower()).inc()

    @contextmanager
    def answer_timer(self) -> Iterator[AnswerOutcome]:
        """Time the block as one answer; set ``.found`` inside it. An exception inside the
        block counts as an ``answer`` error, not as an answer."""
        outcome = AnswerOutcome()
        started = time.perf_counter()
        try:
            yield outcome
        except BaseException:
            self.error("answer")
            raise
        self.answered(time.perf_counter() - started, found=bool(outcome.found))

    def case_filed(self, case_type: str) -> None:
        self.cases_filed.labels(case_type=case_type).inc()

    def error(self, where: str) -> None:
        self.errors.labels(where=where).inc()

    def index_loaded(self, version: str) -> None:
        """Point ``index_info`` at ``version`` (the previous version's series is removed)."""
        self.index_info.clear()
        self.index_info.labels(version=version).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of this registry and its content type (for ``/metrics``)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
