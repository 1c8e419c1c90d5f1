"""Benchmarks kept per server: the runner's bench, its figures stored, shown beside the
earlier runs (``/model bench``). The manager builds it with the database's BenchStore."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from bot.core.errors import OllamaError
from bot.core.ollama_client import normalize_model_name
from bot.core.runner.bench import BenchResult, run_bench
from bot.core.runner.kept import KeptBench
from bot.core.runner.records import Asker

if TYPE_CHECKING:
    from bot.storage.bench import BenchStore

log = logging.getLogger(__name__)

EARLIER_RUNS: Final = 5  # of the same model, shown beside a new run
OTHER_MODELS: Final = 10  # latest runs of other models, shown beside a new run
KEPT_MODELS: Final = 20  # models listed by /model bench without a name


@dataclass(frozen=True, slots=True)
class BenchReport:
    """A run just made and kept, with what it is shown beside."""

    result: BenchResult
    kept: KeptBench
    earlier: list[KeptBench]  # the same model's, newest first
    others: list[KeptBench]  # the newest run of each other model


def kept_results(result: BenchResult) -> dict[str, Any]:
    """What is kept of a run: its figures and per-prompt figures, not the answers' text
    (nothing shows them later, and a long model could make every row heavy)."""
    document = result.to_dict()
    document.pop("prompts", None)  # fixed in the code (BENCH_PROMPTS)
    document["records"] = [
        {k: v for k, v in record.items() if k not in ("content", "prompt")}
        for record in document["records"]
    ]
    return document


class Benchmarks:
    def __init__(self, asker: Asker, store: BenchStore) -> None:
        self._asker = asker
        self._store = store

    async def run(
        self,
        scope: str,
        model: str,
        *,
        requested_by: int | None,
        runs: int = 1,
        on_prompt: Callable[[int, int], Awaitable[None]] | None = None,
    ) -> BenchReport:
        """Bench ``model`` (refused if missing) and keep the run, unless no prompt was
        answered at all: such a run has no figure to compare."""
        name = normalize_model_name(model)
        result = await run_bench(self._asker, name, runs=runs, on_prompt=on_prompt)
        if result.failures == len(result.records):
            reason = result.records[-1].error if result.records else None
            raise OllamaError(f"No benchmark prompt was answered by `{name}`: {reason}")
        kept = await self._store.add(scope, name, kept_results(result), requested_by=requested_by)
        earlier = await self._store.of_model(scope, name, limit=EARLIER_RUNS, before=kept.id)
        latest = await self._store.latest_per_model(scope, limit=OTHER_MODELS + 1)
        others = [k for k in latest if k.model != name][:OTHER_MODELS]
        log.info("bench of %s in %s kept (%d failures)", name, scope, result.failures)
        return BenchReport(result, kept, earlier, others)

    async def kept(self, scope: str) -> list[KeptBench]:
        """The newest run of each model benchmarked in ``scope``, most recent first."""
        return await self._store.latest_per_model(scope, limit=KEPT_MODELS)
