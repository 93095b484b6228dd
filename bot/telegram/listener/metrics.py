"""The bot's Prometheus metrics: one registry per running bot, served as /metrics on the health port.

Built with the official `prometheus_client`, so the exposition format (and OpenMetrics negotiation) is
Prometheus' own. Every metric is documented in docs/METRICS.md; tests/integration/test_metrics.py keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from bot import __version__
from bot.telegram.listener.health import ROLES, RuntimeState

# Sizes a handler or a migration step can reasonably take, in seconds.
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MIGRATION_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)

Reading = Callable[[], int | None]


class BotMetrics:
    """Every metric of one running bot, in a registry of its own (no global state between runs or tests)."""

    def __init__(self, state: RuntimeState, *, pool_in_use: Reading | None = None,
                 in_flight: Reading | None = None) -> None:
        # A `_created` twin of every counter doubles the series and tells an operator nothing.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        registry = self.registry
        self.updates_received = Counter("bot_updates_received", "Updates received from Telegram, by update type.",
                                        ["update_type"], registry=registry)
        self.updates_handled = Counter("bot_updates_handled",
                                       "Updates whose handling ended, by update type, handler and outcome.",
                                       ["update_type", "handler", "outcome"], registry=registry)
        self.handler_seconds = Histogram("bot_handler_duration_seconds", "Time from receiving an update to the "
                                         "end of its handling, by handler.", ["handler"],
                                         buckets=HANDLER_BUCKETS, registry=registry)
        self.api_requests = Counter("bot_api_requests", "Bot API requests answered, by method and result.",
                                    ["method", "result"], registry=registry)
        self.api_retry_after = Counter("bot_api_retry_after_seconds",
                                       "Seconds Telegram asked the bot to wait (429 retry_after), by method.",
                                       ["method"], registry=registry)
        self.api_dropped = Counter("bot_api_calls_dropped", "Outbound calls given up after waiting out 429s for "
                                   "longer than TELEGRAM_RETRY_MAX_WAIT, by method.", ["method"], registry=registry)
        self.pacing_delay = Counter("bot_api_pacing_delay_seconds", "Seconds outbound calls waited for the "
                                    "pacing limits, by limit (overall, chat, group).", ["limit"], registry=registry)
        self.takeovers = Counter("bot_leader_takeovers", "Times this replica took over polling from another one.",
                                 registry=registry)
        self.migration_runs = Counter("bot_migration_runs", "Schema checks or migrations run by this process's "
                                      "start, by result (applied, at_head, verified).", ["result"],
                                      registry=registry)
        self.migration_steps = Counter("bot_migration_steps", "Revisions applied by this process's start.",
                                       registry=registry)
        self.migration_step_seconds = Histogram("bot_migration_step_duration_seconds",
                                                "Duration of each revision applied by this process's start.",
                                                buckets=MIGRATION_BUCKETS, registry=registry)
        Info("bot_build", "The toolkit's version and the revision the code expects the schema at.",
             registry=registry).info({"version": __version__, "schema_head": ",".join(state.heads) or "none"})
        registry.register(_RuntimeCollector(state, pool_in_use, in_flight))
        # Labelled children by label values: .labels() takes a lock and builds a key on every call (hot path).
        self._children: dict[tuple[Any, ...], Any] = {}

    def update_received(self, update_type: str) -> None:
        """Count an update as it arrives."""
        self._child(self.updates_received, update_type).inc()

    def update_done(self, update_type: str, handler: str, outcome: str, seconds: float) -> None:
        """Count and time an update whose handling ended."""
        self._child(self.updates_handled, update_type, handler, outcome).inc()
        self._child(self.handler_seconds, handler).observe(seconds)

    def api_answered(self, method: str, result: str) -> None:
        """Count one Bot API request by its result."""
        self._child(self.api_requests, method, result).inc()

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """The metric's child for these label values, made once."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def record_migration(self, result: str, step_durations_ms: Iterable[float]) -> None:
        """What start did to the schema before the bot ran."""
        self.migration_runs.labels(result).inc()
        for duration_ms in step_durations_ms:
            self.migration_steps.inc()
            self.migration_step_seconds.observe(duration_ms / 1000)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition body and its content type, in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _RuntimeCollector(Collector):
    """Values read at scrape time, so they cost nothing per update: role, in-flight updates, pool use."""

    def __init__(self, state: RuntimeState, pool_in_use: Reading | None, in_flight: Reading | None) -> None:
        self.state = state
        self.pool_in_use = pool_in_use
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily("bot_leader", "1 while this replica is the elected poller, else 0.")
        leader.add_metric([], 1.0 if self.state.role == "leader" else 0.0)
        yield leader
        role = GaugeMetricFamily("bot_role", "This replica's role: 1 for the current one, 0 for the others.",
                                 labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if self.state.role == name else 0.0)
        yield role
        yield from _reading("bot_updates_in_flight", "Updates being handled right now.", self.in_flight)
        yield from _reading("bot_db_pool_connections_in_use", "Database connections checked out of the bot's "
                            "pool right now.", self.pool_in_use)


def _reading(name: str, documentation: str, read: Reading | None) -> Iterator[Metric]:
    """One gauge from a reading, left out when there is nothing to read."""
    value = read() if read is not None else None
    if value is not None:
        gauge = GaugeMetricFamily(name, documentation)
        gauge.add_metric([], float(value))
        yield gauge
