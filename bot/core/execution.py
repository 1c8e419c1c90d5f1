"""Running a query in its turn: the queue slot, the plan, the generation (in rounds, with
the tools the model calls run in between), the check of a structured answer, the stored turn.

The order of one answer's end, which the bot relies on: the result is set on the stream when
the model's final chunk arrives (the reply shows the answer), then the turn is stored, still
inside the conversation's slot so that its next question sees it. A stopped answer keeps its
partial turn; a failed one stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING

from bot.core.answer_turn import ROUND_GAP, AnswerTurn, call_name
from bot.core.errors import ShuttingDownError, StructuredOutputError
from bot.core.events import (
    EventCallback,
    QueuedEvent,
    RetryEvent,
    StartedEvent,
    ToolRunEvent,
    emit,
)
from bot.core.generation import GenerationRequest, generate
from bot.core.hosts.pool import HostPool, Lease
from bot.core.model_catalog import ModelCatalog
from bot.core.planning import Plan, QueryDefaults, QueryPlanner
from bot.core.queries import Query
from bot.core.query_stream import QueryStream
from bot.core.queueing import RequestQueue
from bot.core.stats import RequestStats
from bot.core.structured import validate_answer
from bot.core.types import OllamaQueryResult

if TYPE_CHECKING:
    from bot.storage.store import SessionStore

log = logging.getLogger(__name__)

# An answer that does not match its schema is asked for once more, then refused.
STRUCTURED_RETRIES = 1
# Calls to tools the bot does not have are counted under this one name: the name is the
# model's, and the statistics (and the metrics' labels) must stay bounded by configuration.
UNKNOWN_TOOL = "(unknown)"


class QueryExecutor:
    def __init__(
        self,
        store: SessionStore | None,  # None: no database, no session queries
        hosts: HostPool,
        queue: RequestQueue,
        stats: RequestStats,
        defaults: QueryDefaults,
        on_session_created: Callable[[], None],
        *,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self._store = store
        self._hosts = hosts
        self._queue = queue
        self._stats = stats
        self._on_session_created = on_session_created
        # Told after each stored turn (the memory indexes and summarizes it, in the background).
        self.on_turn_stored: Callable[[str], None] | None = None
        self.planner = QueryPlanner(store, catalog, defaults)
        self.active_streams = 0
        self._in_flight = 0  # past their conversation's queue: what close waits for
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    def refuse_waiting(self) -> None:
        """Closing: a question still waiting (for its conversation's turn, or for a host's
        slot) is refused when its turn comes (ShuttingDownError); those being planned or
        answered may still finish."""
        self._closing = True

    async def wait_idle(self, grace: float) -> bool:
        """Wait until no query is planned or running (True), or ``grace`` seconds (False)."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("closing with %d answers still running", self._in_flight)
            return False
        return True

    def stream(self, query: Query, on_event: EventCallback | None) -> QueryStream:
        """A stream that joins the queue when first iterated; nothing runs before that."""
        query_stream = QueryStream()
        query_stream.bind(self._answer(query, query_stream, on_event))
        return query_stream

    async def _answer(
        self, query: Query, stream: QueryStream, on_event: EventCallback | None
    ) -> AsyncGenerator[str, None]:
        async def queued(position: int, reason: str) -> None:
            await emit(on_event, QueuedEvent(position, reason))

        waited_for_host = False

        async def waiting(position: int) -> None:
            nonlocal waited_for_host
            waited_for_host = True
            await emit(on_event, QueuedEvent(position, "capacity"))

        async with self._queue.slot(query.session_id, queued), self._counted_in_flight():
            if self._closing:  # its turn came after the close began
                raise ShuttingDownError()
            started = time.monotonic()
            turn = AnswerTurn()
            model = query.model or self.planner.default_model
            planned = running = False
            lease: Lease | None = None
            # Its place among the questions waiting for a host, from now: planned before a
            # host's slot is taken (the plan chooses the model, the model which hosts may
            # answer), it is still served in the order it came.
            claim = self._hosts.reserve()
            try:
                plan = await self.planner.plan(query)
                planned = True
                request = plan.request
                model = request.model
                asked = time.monotonic()
                lease = await self._hosts.lease(request.models, waiting, claim)
                if self._closing and waited_for_host:  # a host's slot came after the close
                    raise ShuttingDownError()
                started += time.monotonic() - asked  # the time it runs, as without hosts
                self._running(+1)
                running = True
                await emit(on_event, StartedEvent(model))
                completed = stream.completed
                # A structured answer is shown whole, once it is known to be valid.
                streamed = query.format is None
                format_retries = STRUCTURED_RETRIES
                while True:
                    # After a tool round, the next round's text starts a new paragraph.
                    gap = ROUND_GAP if turn.has_text else ""
                    progress = turn.next_round()
                    async for chunk in generate(lease, request, progress, on_event):
                        if not streamed:
                            continue
                        if progress.done and not completed.done() and not turn.wants_tools(plan):
                            stream.complete(turn.result(plan, query.metadata))
                        if chunk:
                            if gap:
                                chunk, gap = gap + chunk, ""
                            yield chunk
                    if turn.wants_tools(plan):
                        request = await self._run_tools(plan, request, turn, on_event)
                        continue
                    if query.format is not None:
                        try:
                            turn.parsed = validate_answer(progress.content, query.format)
                        except StructuredOutputError as exc:
                            if not format_retries:
                                raise
                            format_retries -= 1
                            turn.discard_round()
                            await emit(on_event, RetryEvent(1, 0.0, exc.user_message))
                            continue
                        yield progress.content
                    break
                if not completed.done():  # not streamed, or no final chunk came
                    stream.complete(turn.result(plan, query.metadata))
                result = completed.result()
                lease.answered()
                lease.release()  # the host's slot is free while the turn is stored
                self.planner.tokens.learn(
                    result.model,
                    request.messages,
                    progress.stats.get("prompt_eval_count"),
                    request.options.get("num_ctx"),
                    request.tools,
                )
                await self._store_turn(query, result, turn)
            except (asyncio.CancelledError, GeneratorExit) as exc:
                if lease is not None:
                    lease.release()
                if stream.stop_requested and turn.has_text and planned:
                    # Stopped by the user: keep what was said, as they saw it.
                    stopped = turn.result(plan, query.metadata, stopped=True)
                    stream.complete(stopped)
                    await self._store_turn(query, stopped, turn)
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            except BaseException as exc:
                # Failed: counted, and nothing stored (no dangling question, no partial answer).
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            finally:
                self._hosts.withdraw(claim)  # unused if planning failed
                if lease is not None:
                    lease.release()
                    self._stats.host_switches += lease.moves
                if running:
                    self._running(-1)
                self._stats.retries += turn.retries
                self._stats.fallbacks += turn.fell_back
            self._stats.record_success(
                result.model,
                time.monotonic() - started,
                result.eval_count or 0,
                turn.first_token_seconds,
            )

    async def _run_tools(
        self,
        plan: Plan,
        request: GenerationRequest,
        turn: AnswerTurn,
        on_event: EventCallback | None,
    ) -> GenerationRequest:
        """Run the round of tool calls the model just asked for; the request that goes on."""
        assert plan.toolset is not None
        calls = turn.round.tool_calls
        await emit(on_event, ToolRunEvent(tuple(call_name(c) for c in calls)))
        outcomes = await plan.toolset.run(calls)
        for outcome in outcomes:
            name = UNKNOWN_TOOL if outcome.status == "unknown" else outcome.name
            self._stats.record_tool(name, outcome.status)
        added = turn.add_tool_round(outcomes)
        last_round = turn.tool_rounds >= plan.max_tool_rounds
        # After the last round the model is offered no tools: it answers with what it has.
        return request.continued(added, tools=None if last_round else request.tools)

    def _running(self, change: int) -> None:
        self.active_streams += change

    @contextlib.asynccontextmanager
    async def _counted_in_flight(self) -> AsyncIterator[None]:
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _store_turn(self, query: Query, result: OllamaQueryResult, turn: AnswerTurn) -> None:
        if query.session_id is None:
            return
        assert self._store is not None
        messages = query.turn(result, turn.exchange, turn.final_text)
        created = await self._store.append_turn(query.session_id, messages, model=result.model)
        if created:
            self._on_session_created()
        if self.on_turn_stored is not None:
            self.on_turn_stored(query.session_id)
