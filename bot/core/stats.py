"""Usage statistics of the request manager (seed 000 and 003 fields)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request, as listeners (metrics) see it."""

    model: str
    outcome: str  # "success", "error" or "cancelled"
    latency: float
    first_token: float | None = None
    tokens: int = 0
    error: str | None = None


@dataclass(slots=True)
class RequestStats:
    started_at: float = field(default_factory=time.monotonic)
    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    total_errors: int = 0
    retries: int = 0
    fallbacks: int = 0
    host_switches: int = 0  # questions and embeddings moved to another Ollama host
    total_tokens_generated: int = 0
    total_latency: float = 0.0
    total_first_token: float = 0.0
    first_token_samples: int = 0
    model_usage: Counter[str] = field(default_factory=Counter)
    error_types: Counter[str] = field(default_factory=Counter)
    # seed 003's tools_usage: calls by tool, and by (tool, outcome) for the metrics.
    tools_usage: Counter[str] = field(default_factory=Counter)
    embedding_requests: int = 0
    texts_embedded: int = 0
    tool_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    listeners: list[Callable[[RequestRecord], None]] = field(default_factory=list)

    def record_success(
        self, model: str, latency: float, tokens: int, first_token: float | None
    ) -> None:
        self.total_requests += 1
        self.successful_requests += 1
        self.total_latency += latency
        self.total_tokens_generated += tokens
        self.model_usage[model] += 1
        if first_token is not None:
            self.total_first_token += first_token
            self.first_token_samples += 1
        self._notify(RequestRecord(model, "success", latency, first_token, tokens))

    def record_failure(self, error: BaseException, latency: float, model: str = "") -> None:
        self.total_requests += 1
        self.failed_requests += 1
        self.total_errors += 1
        self.total_latency += latency
        self.error_types[type(error).__name__] += 1
        cancelled = isinstance(error, asyncio.CancelledError | GeneratorExit)
        outcome = "cancelled" if cancelled else "error"
        self._notify(RequestRecord(model, outcome, latency, error=type(error).__name__))

    def record_embedding(self, model: str, texts: int, latency: float) -> None:
        # Apart from model_usage, which counts answers (seed 003).
        self.embedding_requests += 1
        self.texts_embedded += texts

    def record_tool(self, name: str, status: str) -> None:
        self.tools_usage[name] += 1
        self.tool_outcomes[name, status] += 1

    def _notify(self, record: RequestRecord) -> None:
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("statistics listener failed")

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        done = self.successful_requests + self.failed_requests
        return {
            "total_requests": self.total_requests,
            "successful_requests": self.successful_requests,
            "failed_requests": self.failed_requests,
            "total_errors": self.total_errors,
            "total_tokens_generated": self.total_tokens_generated,
            "average_processing_time": self.total_latency / done if done else 0.0,
            "average_first_token_time": (
                self.total_first_token / self.first_token_samples
                if self.first_token_samples
                else 0.0
            ),
            "error_rate": 100.0 * self.failed_requests / done if done else 0.0,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "host_switches": self.host_switches,
            "model_usage": dict(self.model_usage),
            "error_types": dict(self.error_types),
            "tools_usage": dict(self.tools_usage),
            "embedding_requests": self.embedding_requests,
            "texts_embedded": self.texts_embedded,
            "uptime_seconds": time.monotonic() - self.started_at,
            **extra,
        }
