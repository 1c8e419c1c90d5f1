"""A batch: prompts from a file through one model, a bounded number at a time, each record
handed over as soon as it completes (so the caller can append it to its output at once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bot.core.errors import OllacordError
from bot.core.runner.limits import MAX_CONCURRENCY
from bot.core.runner.records import Asker, RunRecord, ask_one

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 8_000
MAX_PROMPTS_FILE_BYTES = 2_000_000
COMMENT = "#"


class PromptFileError(OllacordError):
    """A prompts file the runner refuses (too large, a prompt too long, no prompt at all)."""


@dataclass(frozen=True, slots=True)
class BatchPrompt:
    """A prompt and its number: its line in the file, so that editing elsewhere in the file
    cannot make a resumed batch take one prompt's answer for another's."""

    index: int
    text: str

    @property
    def key(self) -> tuple[int, str]:
        return (self.index, self.text)


def parse_prompts(text: str) -> list[BatchPrompt]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    if len(text.encode()) > MAX_PROMPTS_FILE_BYTES:
        raise PromptFileError(
            f"The prompts file is larger than {MAX_PROMPTS_FILE_BYTES // 1_000_000} MB."
        )
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(COMMENT):
            continue
        if len(stripped) > MAX_PROMPT_CHARS:
            raise PromptFileError(
                f"The prompt on line {number} is longer than {MAX_PROMPT_CHARS} characters."
            )
        prompts.append(BatchPrompt(number, stripped))
    if not prompts:
        raise PromptFileError("The prompts file has no prompt (one per line; # for comments).")
    return prompts


def pending(prompts: Sequence[BatchPrompt], done: Collection[tuple[int, str]]) -> list[BatchPrompt]:
    """The prompts not answered yet (``done``: the keys of those already answered)."""
    return [p for p in prompts if p.key not in done]


async def run_batch(
    asker: Asker,
    prompts: Sequence[BatchPrompt],
    model: str,
    *,
    concurrency: int,
    on_record: Callable[[RunRecord], None],
) -> list[RunRecord]:
    """Ask every prompt, at most ``concurrency`` at a time (inside the manager's own queue,
    which still bounds what reaches Ollama). Records come in completion order; cancelling
    stops the prompts in flight and keeps what ``on_record`` already received."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    queue = iter(prompts)  # shared: each worker takes the next prompt when it is free
    records: list[RunRecord] = []

    async def worker() -> None:
        for prompt in queue:
            record = await ask_one(asker, prompt.index, prompt.text, model)
            records.append(record)
            on_record(record)

    # A TaskGroup cancels the rest when one fails unexpectedly, or when we are cancelled.
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(prompts))):
            group.create_task(worker())
    return sorted(records, key=lambda r: r.index)
