"""One Ollama server as the pool sees it: its client, its slots, the models it has and has
loaded, whether it is in rotation, and its figures."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.core.hosts.breaker import CircuitBreaker
from bot.core.hosts.spec import HostSpec
from bot.core.ollama_client import OllamaClient, normalize_model_name
from bot.core.types import HealthStatus, ModelInfo


@dataclass(frozen=True, slots=True)
class HostReport:
    """A host's state and figures, for /healthz, /metrics, /stats and the CLI."""

    host: str  # the URL without credentials
    up: bool  # in rotation (its breaker closed)
    in_flight: int
    queued: int  # questions waiting that it could answer
    capacity: int
    answers: int
    errors: int
    health: HealthStatus | None = None  # the last health check, if any

    def as_dict(self) -> dict[str, object]:
        report: dict[str, object] = {
            "host": self.host,
            "status": "up" if self.up else "down",
            "in_flight": self.in_flight,
            "queued": self.queued,
            "capacity": self.capacity,
            "answers": self.answers,
            "errors": self.errors,
        }
        if self.health is not None:
            latency = self.health.latency_ms
            report["latency_ms"] = round(latency, 1) if latency is not None else None
            report["version"] = self.health.version
            if self.health.error:
                report["error"] = self.health.error
        return report


class Host:
    """A server of the pool; the slots' FIFO counts ``active`` against ``capacity``."""

    def __init__(
        self, spec: HostSpec, client: OllamaClient, capacity: int, breaker: CircuitBreaker
    ) -> None:
        self.spec = spec
        self.label = spec.label
        self.client = client
        self.capacity = capacity
        self.active = 0
        self.breaker = breaker
        self.answers = 0
        self.errors = 0  # failures of the server: refused, timed out, busy, dropped, 5xx
        self.health: HealthStatus | None = None
        # Normalized names; None until its list was read once.
        self.models: frozenset[str] | None = None
        self.listing: list[ModelInfo] | None = None
        self.listed_at = 0.0
        self.loaded: set[str] = set()  # from /api/ps, and the models we just heard answer

    def __repr__(self) -> str:
        return f"Host({self.label!r})"

    @property
    def up(self) -> bool:
        return not self.breaker.is_open

    @property
    def free(self) -> int:
        return self.capacity - self.active

    def has(self, model: str) -> bool:
        return self.models is not None and normalize_model_name(model) in self.models

    def is_warm(self, model: str) -> bool:
        return normalize_model_name(model) in self.loaded

    def listed(self, models: list[ModelInfo]) -> None:
        self.listing = models
        self.listed_at = time.monotonic()
        self.models = frozenset(normalize_model_name(m.name) for m in models)

    def list_is_fresh(self, ttl: float) -> bool:
        return self.listing is not None and time.monotonic() - self.listed_at < ttl

    def forget(self, model: str) -> None:
        """It answered that it lacks ``model``: believe it until its list is read again."""
        name = normalize_model_name(model)
        if self.models is not None:
            self.models = self.models - {name}
        self.loaded.discard(name)
        self.listing = None

    def report(self, queued: int) -> HostReport:
        return HostReport(
            self.label,
            self.up,
            self.active,
            queued,
            self.capacity,
            self.answers,
            self.errors,
            self.health,
        )
