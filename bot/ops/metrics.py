"""Prometheus metrics of one bot, in its own registry.

A per-bot CollectorRegistry (not prometheus_client's global one) lets tests, and several bots
in one process, each count their own requests without "duplicated timeseries" errors.
Counters and histograms are fed by the request manager's statistics listeners; the gauges,
the Discord 429 count and the tool calls are read from their owners at scrape time, so they
can never drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.core.hosts.host import HostReport
from bot.core.stats import RequestRecord, RequestStats

log = logging.getLogger(__name__)

PREFIX = "ollacord"
# LLM answers take from a tenth of a second (a cached short reply) to minutes (a long answer
# from a big model on a CPU); the default buckets stop at 10 s and would lump those together.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
UNKNOWN_MODEL = "unknown"

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS", "BotMetrics"]


ToolOutcomes = Mapping[tuple[str, str], int]  # (tool, outcome) -> calls
Recoveries = Mapping[str, int]  # kind (retry, fallback, host_switch) -> times
HostReports = Callable[[], Sequence[HostReport]]
# Each host's figures: (metric kind, HostReport field, help).
HOST_METRICS: tuple[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str], ...] = (
    (GaugeMetricFamily, "up", "1 while the Ollama host is in rotation, 0 while it is out."),
    (GaugeMetricFamily, "in_flight", "Answers the host is generating right now."),
    (GaugeMetricFamily, "queued", "Questions waiting that this host could answer."),
    (CounterMetricFamily, "answers", "Answers the host completed."),
    (CounterMetricFamily, "errors", "Failures of the host: refused, timeouts, busy, dropped, 5xx."),
)


class _LiveValues(Collector):
    """Values owned elsewhere, read when Prometheus scrapes."""

    def __init__(
        self,
        queue_depth: Callable[[], int],
        active_streams: Callable[[], int],
        discord_429: Callable[[], int] | None,
        tool_outcomes: Callable[[], ToolOutcomes],
        recoveries: Callable[[], Recoveries],
        hosts: HostReports | None = None,
    ) -> None:
        self._queue_depth = queue_depth
        self._active_streams = active_streams
        self._discord_429 = discord_429
        self._tool_outcomes = tool_outcomes
        self._recoveries = recoveries
        self._hosts = hosts

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Queries admitted but waiting for their session or for capacity.",
            value=_read(self._queue_depth),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_active_streams",
            "Answers being generated right now.",
            value=_read(self._active_streams),
        )
        if self._discord_429 is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_discord_429",
                "HTTP 429 (rate limited) answers received from Discord.",
                value=_read(self._discord_429),
            )
        # Bounded labels: tool names are the registry's (built-in tools and the configured
        # MCP servers'); calls to tools the bot lacks are all counted as "(unknown)".
        tools = CounterMetricFamily(
            f"{PREFIX}_tool_calls",
            "Tool calls the models made, by tool and outcome (ok, error, timeout, unknown).",
            labels=["tool", "outcome"],
        )
        try:
            counts = sorted(self._tool_outcomes().items())
        except Exception:
            log.exception("a metrics source failed")
            counts = []
        for (tool, outcome), count in counts:
            tools.add_metric([tool, outcome], count)
        yield tools
        recovered = CounterMetricFamily(
            f"{PREFIX}_recoveries",
            "Failures the bot recovered from, by kind: a retry, the fallback model, another "
            "Ollama host.",
            labels=["kind"],
        )
        try:
            times = sorted(self._recoveries().items())
        except Exception:
            log.exception("a metrics source failed")
            times = []
        for kind, count in times:
            recovered.add_metric([kind], count)
        yield recovered
        if self._hosts is not None:
            yield from _host_metrics(self._hosts)


def _host_metrics(source: HostReports) -> Iterator[Metric]:
    """Each Ollama host, labelled by its URL without credentials (bounded: the configured
    hosts only)."""
    try:
        reports = list(source())
    except Exception:
        log.exception("a metrics source failed")
        return
    for kind, field, text in HOST_METRICS:
        family = kind(f"{PREFIX}_host_{field}", text, labels=["host"])
        for report in reports:
            family.add_metric([report.host], float(getattr(report, field)))
        yield family


def _read(source: Callable[[], int]) -> float:
    # A failing source must not break the whole scrape: the other metrics still matter.
    try:
        return float(source())
    except Exception:
        log.exception("a metrics source failed")
        return float("nan")


class BotMetrics:
    """The bot's metrics; call attach() once to start counting the manager's requests."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int],
        active_streams: Callable[[], int],
        discord_429: Callable[[], int] | None = None,
        hosts: HostReports | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Finished requests to Ollama, by model and outcome (success, error, cancelled).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens_generated",
            "Tokens generated by the models, by model.",
            ["model"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_latency_seconds",
            "Time from a request starting to run until it finished, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Time until the model produced its first token, for successful requests.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._stats: RequestStats | None = None
        live = _LiveValues(
            queue_depth, active_streams, discord_429, self._tool_outcomes, self._recoveries, hosts
        )
        self.registry.register(live)

    def _tool_outcomes(self) -> ToolOutcomes:
        return self._stats.tool_outcomes if self._stats is not None else {}

    def _recoveries(self) -> Recoveries:
        # Read from the statistics at scrape time, like /stats, so the two always agree.
        stats = self._stats
        if stats is None:
            return {}
        return {
            "retry": stats.retries,
            "fallback": stats.fallbacks,
            "host_switch": stats.host_switches,
        }

    def attach(self, stats: RequestStats) -> None:
        """Count every request the manager finishes from now on."""
        if self._stats is not None:
            return
        self._stats = stats
        stats.listeners.append(self.observe)

    def detach(self) -> None:
        if self._stats is not None:
            self._stats.listeners.remove(self.observe)
            self._stats = None

    def observe(self, record: RequestRecord) -> None:
        model = record.model or UNKNOWN_MODEL
        self.requests.labels(model=model, outcome=record.outcome).inc()
        self.latency.labels(outcome=record.outcome).observe(record.latency)
        if record.tokens:
            self.tokens.labels(model=model).inc(record.tokens)
        if record.first_token is not None:
            self.first_token.observe(record.first_token)

    def render(self) -> bytes:
        """The text exposition format, for GET /metrics."""
        return generate_latest(self.registry)
