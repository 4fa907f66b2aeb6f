"""Prometheus metrics of a worker."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cadrebot.ops import BotMetrics


def value(metrics: BotMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counters_and_the_found_rate() -> None:
    metrics = BotMetrics()
    # Before any answer both found series exist at zero: the rate is defined from the start.
    assert value(metrics, "cadrebot_answers_total", found="true") == 0
    assert value(metrics, "cadrebot_answers_total", found="false") == 0

    for _ in range(3):
        metrics.update_received("message")
    metrics.update_received("callback_query")
    metrics.answered(0.04, found=True)
    metrics.answered(0.2, found=True)
    metrics.answered(1.5, found=False)
    metrics.case_filed("risk_report")
    metrics.error("handler")
    metrics.error("handler")

    assert value(metrics, "cadrebot_updates_total", kind="message") == 3
    assert value(metrics, "cadrebot_updates_total", kind="callback_query") == 1
    assert value(metrics, "cadrebot_answers_total", found="true") == 2
    assert value(metrics, "cadrebot_answers_total", found="false") == 1
    assert value(metrics, "cadrebot_cases_filed_total", case_type="risk_report") == 1
    assert value(metrics, "cadrebot_errors_total", where="handler") == 2
    assert value(metrics, "cadrebot_answer_latency_seconds_count") == 3
    assert value(metrics, "cadrebot_answer_latency_seconds_sum") == pytest.approx(1.74)
    assert value(metrics, "cadrebot_answer_latency_seconds_bucket", le="0.05") == 1
    assert value(metrics, "cadrebot_answer_latency_seconds_bucket", le="0.3") == 2
    assert value(metrics, "cadrebot_answer_latency_seconds_bucket", le="+Inf") == 3


def test_answer_timer() -> None:
    metrics = BotMetrics()
    with metrics.answer_timer() as answer:
        answer.found = True
    with metrics.answer_timer():
        pass  # found never set: counted as not found
    with pytest.raises(ValueError, match="boom"), metrics.answer_timer():
        raise ValueError("boom")
    assert value(metrics, "cadrebot_answers_total", found="true") == 1
    assert value(metrics, "cadrebot_answers_total", found="false") == 1
    assert value(metrics, "cadrebot_answer_latency_seconds_count") == 2
    assert value(metrics, "cadrebot_errors_total", where="answer") == 1


def test_index_info_names_only_the_version_serving() -> None:
    metrics = BotMetrics()
    metrics.index_loaded("v1")
    metrics.index_loaded("v2")
    assert value(metrics, "cadrebot_index_info", version="v2") == 1
    assert value(metrics, "cadrebot_index_info", version="v1") is None


def test_registries_are_independent_and_can_be_passed_in() -> None:
    shared = CollectorRegistry()
    metrics = BotMetrics(shared)
    assert metrics.registry is shared
    other = BotMetrics()
    metrics.case_filed("subsidy")
    assert shared.get_sample_value("cadrebot_cases_filed_total", {"case_type": "subsidy"}) == 1
    assert value(other, "cadrebot_cases_filed_total", case_type="subsidy") is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        BotMetrics(shared)  # one worker, one set of metrics per registry


def test_exposition_is_prometheus_text() -> None:
    metrics = BotMetrics()
    metrics.update_received("message")
    metrics.answered(0.1, found=False)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {
        "cadrebot_updates",
        "cadrebot_answer_latency_seconds",
        "cadrebot_answers",
        "cadrebot_cases_filed",
        "cadrebot_errors",
        "cadrebot_index_info",
    } <= set(families)
    assert families["cadrebot_answer_latency_seconds"].type == "histogram"
