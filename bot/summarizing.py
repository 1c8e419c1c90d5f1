"""Summaries of transcripts of any length: one pass when it fits, map-reduce when it doesn't."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.answering import Answer, AnswerRun
from bot.errors import InvalidRequestError, OllacordError, OllamaError
from bot.history import CHARS_PER_TOKEN
from bot.manager import OllamaRequestManager

log = logging.getLogger(__name__)

MAX_TRANSCRIPT_CHARS = 1_000_000
DEFAULT_CONTEXT_TOKENS = 4096
# Half the context for the transcript: the rest is instructions and the summary itself.
CONTEXT_SHARE = 0.5
MIN_CHUNK_CHARS = 1000
MAX_REDUCE_ROUNDS = 4

STYLES: dict[str, str] = {
    "brief": "Write a short summary in one or two paragraphs.",
    "detailed": "Write a thorough summary that keeps every important point and decision.",
    "bullets": "Summarize as a list of concise bullet points.",
    "action items": "List the decisions and action items, with owners where named.",
}
SYSTEM_PROMPT = (
    "You summarize transcripts faithfully. Never invent facts; say when something is unclear. "
    "Answer in the language of the transcript."
)


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    transcript: str
    style: str = "brief"
    model: str | None = None
    source: str = "transcript"


def split_transcript(text: str, budget: int) -> list[str]:
    """Pieces of at most ``budget`` characters, cut at line ends where possible."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        while len(line) > budget:  # a single huge line: hard cuts
            if current:
                pieces.append("".join(current))
                current, size = [], 0
            pieces.append(line[:budget])
            line = line[budget:]
        if size + len(line) > budget and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def instructions(style: str, source: str, part: tuple[int, int] | None = None) -> str:
    which = f"part {part[0]} of {part[1]} of a {source}" if part else f"a {source}"
    return f"Here is {which}.\n{STYLES.get(style, STYLES['brief'])}"


class Summarizer:
    def __init__(self, manager: OllamaRequestManager) -> None:
        self._manager = manager

    async def chunk_budget(self, model: str | None) -> int:
        context = DEFAULT_CONTEXT_TOKENS
        try:
            details = await self._manager.show_model(model or self._manager.default_model)
            context = details.context_length or context
        except OllamaError as exc:
            log.info("no context length for %s (%s); assuming %d", model, exc, context)
        return max(MIN_CHUNK_CHARS, int(context * CHARS_PER_TOKEN * CONTEXT_SHARE))

    async def summarize(
        self,
        request: SummaryRequest,
        run: AnswerRun,
        *,
        budget: int | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Answer:
        """Stream the summary into ``run``; long transcripts are summarized piece by piece."""
        text = request.transcript.strip()
        if not text:
            raise InvalidRequestError("There is nothing to summarize: the text is empty.")
        if len(text) > MAX_TRANSCRIPT_CHARS:
            raise InvalidRequestError(
                f"That is too long to summarize ({len(text):,} characters; "
                f"the limit is {MAX_TRANSCRIPT_CHARS:,})."
            )
        budget = budget or await self.chunk_budget(request.model)
        run.reply.start()
        try:
            text, source = await self._reduce(text, request, run, budget, on_progress)
        except OllacordError as exc:
            await run.reply.finish(notice=f"⚠️ {exc.user_message}")
            return Answer(error=exc)
        run.reply.set_status("📝 Writing the summary…")
        return await run.run(
            f"{instructions(request.style, source)}\n\n{text}",
            model=request.model,
            system_prompt=SYSTEM_PROMPT,
            options={"temperature": 0.2},
        )

    async def _reduce(
        self,
        text: str,
        request: SummaryRequest,
        run: AnswerRun,
        budget: int,
        on_progress: Callable[[str], None] | None,
    ) -> tuple[str, str]:
        """Summarize pieces until the text fits one pass; returns (text, what it is)."""
        source = request.source
        for round_ in range(MAX_REDUCE_ROUNDS):
            pieces = split_transcript(text, budget)
            if len(pieces) <= 1:
                break
            notes = []
            for i, piece in enumerate(pieces, 1):
                progress = f"📚 Summarizing part {i} of {len(pieces)}…"
                if round_:
                    progress = f"📚 Combining summaries: part {i} of {len(pieces)}…"
                if on_progress is not None:
                    on_progress(progress)
                run.reply.set_status(progress)
                result = await self._manager.query(
                    prompt=f"{instructions('detailed', source, (i, len(pieces)))}\n\n{piece}",
                    model=request.model,
                    system_prompt=SYSTEM_PROMPT,
                    temperature=0.2,
                )
                notes.append(f"Part {i}:\n{result.content.strip()}")
            text = "\n\n".join(notes)
            source = f"set of partial summaries of a {request.source}, in order"
        return text, source
