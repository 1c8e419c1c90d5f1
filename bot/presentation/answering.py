"""One streamed answer: query events become status lines, text becomes a StreamingReply.

Discord-agnostic: the cog supplies the sink (where the reply goes) and a stop signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import OllacordError
from bot.core.events import (
    HostSwitchEvent,
    QueryEvent,
    ToolRunEvent,
)
from bot.core.manager import OllamaRequestManager
from bot.core.presets import effective_options, get_preset
from bot.core.query_stream import QueryStream
from bot.core.structured import check_format, render_json
from bot.core.tools.registry import ToolSet
from bot.core.types import ChatTarget, OllamaQueryResult
from bot.presentation.answer_text import footer, neutral, sources_note, status_line
from bot.presentation.shutdown import InFlight
from bot.presentation.streaming import ReplySink, StreamingReply

log = logging.getLogger(__name__)


def _preset_options(name: str | None) -> dict[str, Any]:
    return dict(get_preset(name).options) if name else {}


def _preset_timeout(name: str | None) -> float | None:
    return get_preset(name).timeout if name else None


FIRST = asyncio.FIRST_COMPLETED

MAX_PROMPT_CHARS = 6000  # Discord's own cap on a slash-command string option
STOPPED_EARLY = "⏹️ Stopped before the model answered."
# Under an answer shown whole whose turn could not be stored (the database locked or full).
NOT_SAVED = "This answer was not saved; the next question won't see it."
SEARCHING_KNOWLEDGE = "📚 Searching the knowledge base…"
KNOWLEDGE_UNAVAILABLE = "📚 knowledge base unavailable: answered without it"


@dataclass(slots=True)
class Answer:
    """How an answer ended: ``result`` on success or stop, ``error`` on failure."""

    result: OllamaQueryResult | None = None
    error: OllacordError | None = None
    stopped: bool = False
    events: list[QueryEvent] = field(default_factory=list)


class AnswerRun:
    """Streams one query into a reply; ``stop()`` ends it early and keeps what was written.

    With ``in_flight``, a stop of the bot waits for it while it runs, or interrupts it.
    """

    def __init__(
        self,
        manager: OllamaRequestManager,
        sink: ReplySink,
        *,
        in_flight: InFlight | None = None,
        explain: Callable[[OllacordError], str] = neutral,
    ) -> None:
        self._manager = manager
        self.explain = explain  # how this answer's front end words an error
        self.reply = StreamingReply(sink)
        self._stream: QueryStream | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._in_flight = in_flight
        self._interrupted: str | None = None  # the notice, once interrupt() was called
        self._structured = False  # a JSON answer: shown whole as a code block
        self._tools_chosen = False
        self._knowledge_note: str | None = None  # the sources (or their absence) in the footer
        self._persona: str | None = None  # the persona answering, named in the footer
        self.answer = Answer()
        # Called once the answer's end is shown (before its turn is stored, which may take
        # a while under load): the asker may ask again (``Ticket.answered``).
        self.on_shown: Callable[[], None] = lambda: None

    def _on_event(self, event: QueryEvent) -> None:
        self.answer.events.append(event)
        if isinstance(event, HostSwitchEvent) and event.withdrawn:
            # The server went away mid-answer: another answers from the start.
            self.reply.withdraw(event.withdrawn)
        line = status_line(event)
        shown_under_text = isinstance(event, ToolRunEvent | HostSwitchEvent)
        if line is not None and (not self.reply.has_text or shown_under_text):
            self.reply.set_status(line)

    def stop(self) -> bool:
        """Stop generating; False if the answer had already ended."""
        if self._consumer is None or self._consumer.done() or self._stream is None:
            return False
        self._stream.request_stop()
        self._consumer.cancel()
        return True

    def interrupt(self, notice: str) -> None:
        """Stop like ``stop()`` (what was written is kept), ending with ``notice``; also
        when the query has not started yet: it then stops as soon as it does."""
        self._interrupted = notice
        self.stop()

    def _tracked(self) -> contextlib.AbstractContextManager[None]:
        if self._in_flight is None:
            return contextlib.nullcontext()
        return self._in_flight.tracking(self)

    async def ask(
        self,
        prompt: str,
        target: ChatTarget,
        *,
        model: str | None = None,
        preset: str | None = None,
        images: Sequence[bytes] = (),
        toolset: ToolSet | None = None,
        format: str | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Answer:
        """A chat question in a conversation. Options in their order of precedence: the
        channel's preset, the channel's options, ``preset``, then ``overrides``
        (temperature...)."""
        chosen = {k: v for k, v in overrides.items() if v is not None}
        self._persona = target.persona
        layered = effective_options(
            [
                ("channel preset", _preset_options(target.preset)),
                ("channel", target.options),
                ("preset", _preset_options(preset)),
                ("question", chosen),
            ]
        )
        options: dict[str, Any] = {name: value for name, (value, _) in layered.items()}
        model = model or target.model
        timeout = _preset_timeout(preset) or _preset_timeout(target.preset)
        if timeout is not None:
            options["timeout_ms"] = int(timeout * 1000)
        with self._tracked():
            if "think" not in options:
                # Asked to think, a reasoning model sends its reasoning apart from the answer:
                # shown as a status, never stored. Unasked, some mix it into the answer text.
                name = model or self._manager.default_model
                if "thinking" in await self._manager.catalog.capabilities(name):
                    options["think"] = True
            if images:
                options["images"] = list(images)
            if toolset:
                options["toolset"] = toolset
                self._tools_chosen = toolset.chosen
            if target.keep_alive is not None:
                options["keep_alive"] = target.keep_alive
            if format is not None:
                # Refused here, before anything is shown: an unusable schema is the asker's
                # mistake, told the way the caller tells errors (privately, on Discord),
                # not an answer everyone sees.
                check_format(format)
                options["format"] = format
                self._structured = True
                self.reply.set_status("🧩 Writing a JSON answer…")
            options.update(await self._knowledge(prompt, target))
            options.update(await self._member_notes(target))
            return await self._run(
                prompt,
                session_id=target.session_id,
                model=model,
                system_prompt=target.system_prompt,
                options=options,
            )

    async def _knowledge(self, prompt: str, target: ChatTarget) -> dict[str, Any]:
        """The query's ``sources``: the server's passages for ``prompt`` ([]: none relevant,
        which the model is told). Nothing where knowledge is off or the server has no
        documents; a failing embedding model leaves the answer without sources, said in
        the footer, rather than without an answer."""
        scope = target.knowledge_scope
        if not target.knowledge or scope is None or self._manager.services.engine is None:
            return {}
        knowledge = self._manager.knowledge
        try:
            if not await knowledge.preload(scope):  # in memory after the first question
                return {}
            if not self._structured:
                self.reply.set_status(SEARCHING_KNOWLEDGE)
            passages = await knowledge.search(
                scope, prompt, channel_id=target.channel_id, k=target.knowledge_passages
            )
        except OllacordError as exc:
            log.warning("%s: knowledge search failed: %s", scope, exc.user_message)
            self._knowledge_note = KNOWLEDGE_UNAVAILABLE
            return {}
        sources = knowledge.sources_for(passages)
        self._knowledge_note = sources_note(sources.labels)
        return {"sources": list(sources.texts)}

    async def _member_notes(self, target: ChatTarget) -> dict[str, Any]:
        """The query's ``notes``: what the member asking asked the bot to remember, where
        their server has opted in. Unreadable notes leave the answer without them."""
        memory = self._manager.memory
        member, scope = target.member_id, target.member_scope
        if memory is None or not target.member_notes or member is None or scope is None:
            return {}
        try:
            notes = await memory.notes_for(scope, member)
        except OllacordError as exc:
            log.warning("%s: member notes unreadable: %s", scope, exc.user_message)
            return {}
        return {"notes": notes} if notes else {}

    async def run(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Answer:
        with self._tracked():
            return await self._run(
                prompt,
                session_id=session_id,
                model=model,
                system_prompt=system_prompt,
                options=options,
            )

    async def _run(
        self,
        prompt: str,
        *,
        session_id: str | None,
        model: str | None,
        system_prompt: str | None,
        options: dict[str, Any] | None,
    ) -> Answer:
        self.reply.start()
        try:
            self._stream = self._manager.stream(
                prompt=prompt,
                session_id=session_id,
                model=model,
                system_prompt=system_prompt,
                on_event=self._on_event,
                **(options or {}),
            )
            self._consumer = asyncio.create_task(self._consume(self._stream))
            if self._interrupted is not None:
                self.stop()
            # The answer's end: shown as soon as it is complete, while the core stores it.
            await asyncio.wait((self._consumer, self._stream.completed), return_when=FIRST)
            if self._stream.completed.done():
                self._show_complete(self._stream.completed.result())
                self.on_shown()
            await self._consumer
        except asyncio.CancelledError:
            if self._stream is None or not self._stream.stop_requested:
                # Nobody waits for this answer any more (its acknowledgement failed): the
                # model stops too, or its turn would be stored for a question nobody saw
                # answered. One already complete was shown: it is stored as it was.
                consumer = self._consumer
                if consumer is not None and self._stream and not self._stream.completed.done():
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
                await self.reply.cancel()
                raise
            self.answer.stopped = True
        except OllacordError as exc:
            self.answer.error = exc
        except BaseException:
            await self.reply.cancel()  # don't leave the pump waiting for an end that won't come
            raise
        self.answer.result = self._stream.result if self._stream else None
        await self._deliver()
        return self.answer

    def _ending(self, result: OllamaQueryResult) -> tuple[str, str | None]:
        """The footer and notice an answer ends with."""
        stopped = self._stream is not None and self._stream.stop_requested
        interrupted = stopped and self._interrupted is not None
        text = footer(
            result,
            stopped=stopped and not interrupted,
            tools_chosen=self._tools_chosen,
            persona=self._persona,
        )
        if self._knowledge_note:
            text += f" · {self._knowledge_note}"
        return text, self._interrupted if interrupted else None

    def _show_complete(self, result: OllamaQueryResult) -> None:
        text, notice = self._ending(result)
        if self._structured and result.parsed is not None:
            self.reply.push(f"```json\n{render_json(result.parsed)}\n```")
        self.reply.close(text, notice=notice)

    async def _consume(self, stream: QueryStream) -> None:
        if self._structured:  # shown whole once complete (see _show_complete)
            async for _ in stream:
                pass
            return
        push = self.reply.push
        async for chunk in stream:
            push(chunk)

    async def _deliver(self) -> None:
        answer = self.answer
        if answer.error is not None and self.reply.closed:
            # Shown already; only storing the turn failed (the cause is in the log).
            log.warning("answer shown but not remembered: %s", answer.error.user_message)
            self.reply.amend(f"⚠️ {NOT_SAVED} {self.explain(answer.error)}")
            await self.reply.finish()
        elif answer.error is not None:
            await self.reply.finish(notice=f"⚠️ {self.explain(answer.error)}")
        elif answer.result is not None:
            text, notice = self._ending(answer.result)
            if not self.reply.closed and self._structured and answer.result.parsed is not None:
                self.reply.push(f"```json\n{render_json(answer.result.parsed)}\n```")
            await self.reply.finish(text, notice=notice)
        else:
            await self.reply.finish(notice=self._interrupted or STOPPED_EARLY)
        self.on_shown()
