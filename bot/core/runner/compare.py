"""A comparison: the same question to up to four models, one record per model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.errors import InvalidRequestError, ModelNotFoundError
from bot.core.runner.limits import MAX_COMPARE_MODELS, MIN_COMPARE_MODELS
from bot.core.runner.records import Asker, RunRecord, ask_one

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompareResult:
    prompt: str
    records: tuple[RunRecord, ...]  # in the order the models were given

    @property
    def missing(self) -> list[str]:
        return [r.model for r in self.records if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "compare",
            "prompt": self.prompt,
            "models": [r.model for r in self.records],
            "failed": self.missing,
            "records": [r.to_dict() for r in self.records],
        }


def check_models(models: Sequence[str]) -> list[str]:
    """The models, each once, in their order; refused when fewer than two or more than four."""
    unique = list(dict.fromkeys(models))
    if not MIN_COMPARE_MODELS <= len(unique) <= MAX_COMPARE_MODELS:
        raise InvalidRequestError(
            f"Compare {MIN_COMPARE_MODELS} to {MAX_COMPARE_MODELS} different models "
            f"({len(unique)} given)."
        )
    return unique


async def run_compare(asker: Asker, models: Sequence[str], prompt: str) -> CompareResult:
    """Every model answers at once (the manager's queue decides what really runs together);
    a model that is missing or fails gets its error as its record, the others still answer."""
    chosen = check_models(models)
    if not prompt.strip():
        raise InvalidRequestError("The prompt is empty.")

    async def one(position: int, model: str) -> RunRecord:
        if not await asker.is_model_available(model):
            # Asked anyway, FALLBACK_MODELS could answer in its place; say it is missing.
            return RunRecord(position, prompt, model, error=ModelNotFoundError(model).user_message)
        return await ask_one(asker, position, prompt, model)

    records = await asyncio.gather(*(one(i, m) for i, m in enumerate(chosen, start=1)))
    return CompareResult(prompt, tuple(records))
