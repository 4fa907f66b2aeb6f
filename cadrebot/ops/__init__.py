"""Operations: health of a running worker and its Prometheus metrics.

* :mod:`cadrebot.ops.health`: :func:`check_health` → :class:`HealthReport` (database reachable
  and migrated, index loaded and its version), the body and status of ``/healthz``.
* :mod:`cadrebot.ops.metrics`: :class:`BotMetrics`, the metric objects a worker updates,
  registered in a registry the caller passes in (or a private one), and their exposition.
* :mod:`cadrebot.ops.probe`: ``python -m cadrebot.ops.probe``, the container HEALTHCHECK.
"""

from cadrebot.ops.health import DatabaseHealth, HealthReport, check_database, check_health
from cadrebot.ops.metrics import BotMetrics

__all__ = ["BotMetrics", "DatabaseHealth", "HealthReport", "check_database", "check_health"]
