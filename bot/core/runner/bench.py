"""A benchmark: a fixed set of named prompts, each asked ``runs`` times of one model."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from bot.core.errors import InvalidRequestError, ModelNotFoundError
from bot.core.runner.limits import MAX_BENCH_RUNS
from bot.core.runner.records import Asker, RunRecord, Stats, ask_one, figures

log = logging.getLogger(__name__)

# Fixed so that two benchmarks (two models, two days, two machines) compare: short and long
# answers, some reasoning, some code. Changing them makes older reports incomparable.
BENCH_PROMPTS: Final[tuple[tuple[str, str], ...]] = (
    ("greeting", "Say hello in one short sentence."),
    ("facts", "List three facts about the Moon, one line each."),
    ("reasoning", "A train leaves at 14:05 and arrives at 16:50. How long is the trip?"),
    ("code", "Write a Python function that reverses a string, with a docstring."),
    ("summary", "Summarize the plot of Romeo and Juliet in four sentences."),
)


@dataclass(frozen=True, slots=True)
class BenchResult:
    model: str
    runs: int
    records: tuple[RunRecord, ...]

    @property
    def figures(self) -> dict[str, Stats]:
        return figures(self.records)

    @property
    def failures(self) -> int:
        return sum(not r.ok for r in self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bench",
            "model": self.model,
            "runs": self.runs,
            "prompts": dict(BENCH_PROMPTS),
            "figures": {name: stats.to_dict() for name, stats in self.figures.items()},
            "failures": self.failures,
            "records": [r.to_dict() for r in self.records],
        }


async def run_bench(
    asker: Asker,
    model: str,
    *,
    runs: int = 1,
    on_prompt: Callable[[int, int], Awaitable[None]] | None = None,
) -> BenchResult:
    """Each prompt ``runs`` times, one after the other: concurrent answers would share the
    GPU and every figure would measure the contention instead of the model. A model the
    server does not have is refused before anything is asked. ``on_prompt(i, n)`` is awaited
    before the i-th of n prompts is asked (to show progress)."""
    if not 1 <= runs <= MAX_BENCH_RUNS:
        raise InvalidRequestError(f"The number of runs must be between 1 and {MAX_BENCH_RUNS}.")
    if not await asker.is_model_available(model):
        raise ModelNotFoundError(model)
    records: list[RunRecord] = []
    total = runs * len(BENCH_PROMPTS)
    for run in range(1, runs + 1):
        for number, (name, prompt) in enumerate(BENCH_PROMPTS, start=1):
            if on_prompt is not None:
                await on_prompt(len(records) + 1, total)
            record = await ask_one(asker, number, prompt, model)
            log.debug("bench %s run %d, %s: %s", model, run, name, record.error or "ok")
            records.append(record)
    return BenchResult(model, runs, tuple(records))
