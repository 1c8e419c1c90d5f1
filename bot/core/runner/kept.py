"""A benchmark as the database keeps it: the record the bench store returns (it imports
nothing heavy, so storage can use it without loading the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class KeptBench:
    """A kept ``/model bench`` run: ``results`` is the runner's document (figures, runs,
    failures, per-prompt figures), as BenchResult.to_dict() wrote it, answers left out."""

    id: int
    scope: str
    model: str
    requested_by: int | None
    created_at: datetime
    results: dict[str, Any]

    def figure(self, name: str, which: str = "mean") -> float | None:
        """A figure's mean or median (None when no answer had it, or the row predates it)."""
        stats = (self.results.get("figures") or {}).get(name) or {}
        value = stats.get(which)
        return float(value) if isinstance(value, int | float) else None
