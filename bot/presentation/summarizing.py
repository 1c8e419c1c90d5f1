"""Summaries of transcripts of any length: one pass when it fits, map-reduce when it doesn't."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.context_window import prompt_budget
from bot.core.errors import InvalidRequestError, OllacordError
from bot.core.events import QueryEvent
from bot.core.history import MESSAGE_OVERHEAD_TOKENS
from bot.core.manager import OllamaRequestManager
from bot.presentation.answer_text import status_line
from bot.presentation.answering import Answer, AnswerRun

log = logging.getLogger(__name__)

MAX_TRANSCRIPT_CHARS = 1_000_000
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
    num_ctx: int | None = None  # the channel's context window, if it chose one


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

    async def chunk_budget(
        self, model: str | None, num_ctx: int | None = None, source: str = "transcript"
    ) -> int:
        """Characters of transcript per request, so that each request fits the window it
        runs with (not the model's trained maximum: Ollama runs a smaller one unless told)."""
        name = model or self._manager.default_model
        window = await self._manager.context_window(name, num_ctx)
        tokens = self._manager.tokens
        # The system prompt and the longest instructions come with every piece.
        combining = f"set of partial summaries of a {source}, in order"
        longest = instructions("detailed", combining, (999, 999))
        fixed = tokens.text_tokens(f"{SYSTEM_PROMPT}{longest}\n\n", name)
        room = prompt_budget(window.tokens) - fixed - 2 * MESSAGE_OVERHEAD_TOKENS
        return max(MIN_CHUNK_CHARS, int(room * tokens.chars_per_token(name)))

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
        window = await self._manager.context_window(request.model, request.num_ctx)
        budget = budget or await self.chunk_budget(request.model, window.tokens, request.source)
        run.reply.start()
        try:
            text, source = await self._reduce(
                text, request, run, budget, on_progress, window.tokens
            )
        except OllacordError as exc:
            await run.reply.finish(notice=f"⚠️ {run.explain(exc)}")
            return Answer(error=exc)
        run.reply.set_status("📝 Writing the summary…")
        return await run.run(
            f"{instructions(request.style, source)}\n\n{text}",
            model=request.model,
            system_prompt=SYSTEM_PROMPT,
            options={"temperature": 0.2, "num_ctx": window.tokens},
        )

    async def _reduce(
        self,
        text: str,
        request: SummaryRequest,
        run: AnswerRun,
        budget: int,
        on_progress: Callable[[str], None] | None,
        num_ctx: int,
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
                    num_ctx=num_ctx,
                    on_event=_status_under(progress, run),
                )
                notes.append(f"Part {i}:\n{result.content.strip()}")
            text = "\n\n".join(notes)
            source = f"set of partial summaries of a {request.source}, in order"
        return text, source


def _status_under(progress: str, run: AnswerRun) -> Callable[[QueryEvent], None]:
    """Show a part's events (a retry, a fallback, its place in the queue) under its progress
    line: the user sees why a part takes longer, as for any other answer."""

    def on_event(event: QueryEvent) -> None:
        line = status_line(event)
        if line is not None:
            run.reply.set_status(f"{progress}\n{line}")

    return on_event
