"""Running a query in its turn: the queue slot, the plan, the generation, the stored turn.

The order of one answer's end, which the bot relies on: the result is set on the stream when
the model's final chunk arrives (the reply shows the answer), then the turn is stored, still
inside the conversation's slot so that its next question sees it. A stopped answer keeps its
partial turn; a failed one stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from bot.core.events import EventCallback, QueuedEvent, StartedEvent, emit
from bot.core.generation import GenerationProgress, GenerationRequest, generate
from bot.core.model_catalog import ModelCatalog
from bot.core.ollama_client import OllamaClient
from bot.core.planning import Query, QueryDefaults, QueryPlanner
from bot.core.query_stream import QueryStream
from bot.core.queueing import RequestQueue
from bot.core.stats import RequestStats
from bot.core.types import OllamaQueryResult

if TYPE_CHECKING:
    from bot.storage.store import SessionStore

log = logging.getLogger(__name__)


class QueryExecutor:
    def __init__(
        self,
        store: SessionStore | None,  # None: no database, no session queries
        client: OllamaClient,
        queue: RequestQueue,
        stats: RequestStats,
        defaults: QueryDefaults,
        on_session_created: Callable[[], None],
        *,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._queue = queue
        self._stats = stats
        self._on_session_created = on_session_created
        self.planner = QueryPlanner(store, catalog, defaults)
        self.active_streams = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self, grace: float) -> bool:
        """Wait until no query is running (True), or ``grace`` seconds (False)."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("closing with %d answers still running", self.active_streams)
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

        async with self._queue.slot(query.session_id, queued):
            started = time.monotonic()
            self._running(+1)
            progress = GenerationProgress()
            model = query.model or self.planner.default_model
            request: GenerationRequest | None = None
            try:
                request = await self.planner.plan(query)
                model = request.model
                await emit(on_event, StartedEvent(model))
                completed = stream.completed
                async for chunk in generate(self._client, request, progress, on_event):
                    if progress.done and not completed.done():
                        stream.complete(progress.result(model, query.metadata))
                    if chunk:
                        yield chunk
                if not completed.done():  # a model that never sent its final chunk
                    stream.complete(progress.result(model, query.metadata))
                result = completed.result()
                self.planner.tokens.learn(
                    result.model,
                    request.messages,
                    result.prompt_eval_count,
                    request.options.get("num_ctx"),
                )
                await self._store_turn(query, result)
            except (asyncio.CancelledError, GeneratorExit) as exc:
                if stream.stop_requested and progress.parts and request is not None:
                    # Stopped by the user: keep what was said, as they saw it.
                    progress.done_reason = "stopped"
                    stopped = progress.result(model, query.metadata)
                    stream.complete(stopped)
                    await self._store_turn(query, stopped)
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            except BaseException as exc:
                # Failed: counted, and nothing stored (no dangling question, no partial answer).
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            finally:
                self._running(-1)
                self._stats.retries += progress.retries
                self._stats.fallbacks += progress.fallback_from is not None
            self._stats.record_success(
                result.model,
                time.monotonic() - started,
                result.eval_count or 0,
                progress.first_token_seconds,
            )

    def _running(self, change: int) -> None:
        self.active_streams += change
        if self.active_streams:
            self._idle.clear()
        else:
            self._idle.set()

    async def _store_turn(self, query: Query, result: OllamaQueryResult) -> None:
        if query.session_id is None:
            return
        assert self._store is not None
        created = await self._store.append_turn(
            query.session_id, query.turn(result), model=result.model
        )
        if created:
            self._on_session_created()
