"""One prompt's outcome as a typed record, and the figures computed over several."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, Unpack

from bot.core.errors import OllacordError
from bot.core.queries import QueryArgs
from bot.core.types import NANOSECONDS, OllamaQueryResult

log = logging.getLogger(__name__)


class Asker(Protocol):
    """What the runner needs of OllamaRequestManager: its ``ask`` (queue, retries and
    timeouts included) and whether a model exists."""

    async def ask(self, **args: Unpack[QueryArgs]) -> OllamaQueryResult: ...

    async def is_model_available(self, name: str) -> bool: ...


def _seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / NANOSECONDS


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A prompt asked of a model: the answer and Ollama's figures (seconds), or the error.

    ``time_to_first_token`` is what the server reports (load + prompt evaluation): the
    client's own clock would add the queue wait, which says nothing about the model.
    """

    index: int
    prompt: str
    model: str
    content: str = ""
    answered_by: str | None = None  # differs from ``model`` when a fallback answered
    prompt_tokens: int | None = None
    tokens: int | None = None
    tokens_per_second: float | None = None
    time_to_first_token: float | None = None
    load_time: float | None = None
    total: float | None = None
    wall_time: float | None = None  # as the client saw it, queue included
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_result(
        cls, index: int, prompt: str, model: str, result: OllamaQueryResult, wall: float
    ) -> RunRecord:
        load, prompt_eval = result.load_duration, result.prompt_eval_duration
        first = None if load is None and prompt_eval is None else (load or 0) + (prompt_eval or 0)
        return cls(
            index=index,
            prompt=prompt,
            model=model,
            content=result.content,
            answered_by=result.model,
            prompt_tokens=result.prompt_eval_count,
            tokens=result.eval_count,
            tokens_per_second=result.tokens_per_second,
            time_to_first_token=_seconds(first),
            load_time=_seconds(load),
            total=_seconds(result.total_duration),
            wall_time=wall,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


async def ask_one(asker: Asker, index: int, prompt: str, model: str) -> RunRecord:
    """Ask; a failure the core knows (missing model, timeout, server error) becomes the
    record's error, so one bad prompt or model never stops the others."""
    started = time.monotonic()
    try:
        result = await asker.ask(prompt=prompt, model=model)
    except OllacordError as exc:
        log.info("prompt %d to %s failed: %s", index, model, exc.user_message)
        return RunRecord(index=index, prompt=prompt, model=model, error=exc.user_message)
    wall = time.monotonic() - started
    if result.fallback_from is not None:
        # An answer or a figure from another model (FALLBACK_MODELS) would be misleading.
        error = f"The model `{model}` is not available; `{result.model}` would have answered."
        return RunRecord(
            index=index, prompt=prompt, model=model, answered_by=result.model, error=error
        )
    return RunRecord.from_result(index, prompt, model, result, wall)


@dataclass(frozen=True, slots=True)
class Stats:
    """Mean and median of one figure over the records that have it."""

    count: int
    mean: float | None
    median: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stats:
        present = [v for v in values if v is not None]
        if not present:
            return cls(0, None, None)
        return cls(len(present), statistics.fmean(present), statistics.median(present))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "median": self.median}


FIGURES = ("tokens_per_second", "time_to_first_token", "load_time", "total")


def figures(records: Sequence[RunRecord]) -> dict[str, Stats]:
    """Each figure's mean and median over the records that succeeded."""
    answered = [r for r in records if r.ok]
    return {name: Stats.of([getattr(r, name) for r in answered]) for name in FIGURES}
