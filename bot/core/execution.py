"""Running a planned query: its turn in the queue, the session's context, storing the turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.config import DEFAULT_NUM_CTX
from bot.core.context_window import (
    FROM_CHANNEL,
    FROM_REQUEST,
    ContextWindow,
    TokenEstimator,
    choose_window,
    prompt_budget,
)
from bot.core.errors import ContextOverflowError
from bot.core.events import EventCallback, QueuedEvent, StartedEvent, emit
from bot.core.generation import GenerationOutcome, GenerationRequest, generate
from bot.core.history import ChatMessage
from bot.core.model_catalog import ModelCatalog
from bot.core.ollama_client import OllamaClient
from bot.core.prompting import assemble
from bot.core.query import QueryPlan, QueryStream, build_result
from bot.core.queueing import RequestQueue
from bot.core.stats import RequestStats
from bot.core.types import GenerationConfig, OllamaQueryResult
from bot.storage.records import SessionSettings

if TYPE_CHECKING:
    from bot.storage.store import SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueryDefaults:
    """The manager's defaults, as they were when it started."""

    model: str
    system_prompt: str | None
    max_history_length: int
    max_history_tokens: int | None
    generation: GenerationConfig
    num_ctx: int = DEFAULT_NUM_CTX  # the window asked for when nobody chose one


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
        self._defaults = defaults
        self._on_session_created = on_session_created
        self._catalog = catalog
        self.tokens = TokenEstimator()
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

    def stream(self, plan: QueryPlan, on_event: EventCallback | None) -> QueryStream:
        """A stream that joins the queue when first iterated; nothing runs before that."""
        query_stream = QueryStream()
        outcome = GenerationOutcome()

        def turn() -> AbstractAsyncContextManager[GenerationRequest]:
            return self._turn(plan, on_event, query_stream, outcome)

        query_stream.bind(generate(self._client, turn, outcome, on_event))
        return query_stream

    async def _prepare(self, plan: QueryPlan) -> GenerationRequest:
        """Fill in the session's settings and history; runs once the session's turn has come."""
        settings = SessionSettings()
        history: list[ChatMessage] = []
        if plan.session_id is not None:
            limit = self._defaults.max_history_length if plan.use_history else 0
            assert self._store is not None  # the manager refuses sessions without a database
            settings, history = await self._store.load_context(plan.session_id, limit)
        has_system = any(m["role"] == "system" for m in plan.new_messages)
        system = plan.system_prompt or settings.system_prompt or self._defaults.system_prompt
        request = plan.request
        request.model = plan.model or settings.model or self._defaults.model
        config = self._defaults.generation.merged(settings.options).merged(plan.overrides)
        source = FROM_REQUEST if plan.overrides.get("num_ctx") else FROM_CHANNEL
        window = await self.context_window(request.model, config.num_ctx, source)
        config.num_ctx = window.tokens
        # The messages fit the window with room left for the answer.
        budget = prompt_budget(window.tokens, config.num_predict)
        if self._defaults.max_history_tokens is not None:
            budget = min(budget, self._defaults.max_history_tokens)

        def cost(message: ChatMessage) -> int:
            return self.tokens.message_tokens(message, request.model)

        request.messages = assemble(
            system_prompt=None if has_system else system,
            history=history,
            new_messages=plan.new_messages,
            max_messages=self._defaults.max_history_length,
            max_tokens=budget,
            cost=cost,
        )
        needed = sum(cost(m) for m in request.messages)
        if needed > window.tokens:
            # Ollama would drop the start of it silently, llama.cpp refuse it: say so now.
            raise ContextOverflowError(tokens=needed, window=window.tokens)
        request.options = config.to_options()
        return request

    async def context_window(
        self, model: str, chosen: int | None = None, source: str = FROM_REQUEST
    ) -> ContextWindow:
        """The window a query on ``model`` runs with: ``chosen``, else the default, capped."""
        model_max = None
        if self._catalog is not None:
            model_max = await self._catalog.context_length(model)
        return choose_window(chosen, source, self._defaults.num_ctx, model_max)

    @contextlib.asynccontextmanager
    async def _turn(
        self,
        plan: QueryPlan,
        on_event: EventCallback | None,
        control: QueryStream,
        outcome: GenerationOutcome,
    ) -> AsyncIterator[GenerationRequest]:
        """One query's turn: its queue slot, its context in, its result and stored turn out."""

        async def queued(position: int, reason: str) -> None:
            await emit(on_event, QueuedEvent(position, reason))

        async with self._queue.slot(plan.session_id, queued):
            started = time.monotonic()
            self.active_streams += 1
            self._idle.clear()
            model = plan.model or self._defaults.model
            try:
                request = await self._prepare(plan)
                model = request.model
                await emit(on_event, StartedEvent(request.model))

                def complete() -> None:
                    # The caller may show the answer now; the turn is stored afterwards,
                    # still inside the session's slot so the next question sees it.
                    control.set_result(build_result(outcome, request.model, plan.metadata))

                outcome.on_complete = complete
                yield request  # the answer streams here
                if control.result is None:
                    complete()
                result = control.result
                assert result is not None
                self.tokens.learn(
                    result.model,
                    request.messages,
                    result.prompt_eval_count,
                    request.options.get("num_ctx"),
                )
                await self._store_turn(plan, result)
            except (asyncio.CancelledError, GeneratorExit) as exc:
                if control.stop_requested and outcome.parts:
                    # Stopped by the user: keep what was said, as they saw it.
                    await self._keep_stopped(plan, request, outcome, control)
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            except BaseException as exc:
                # Failed: counted, and nothing stored (no dangling question, no partial answer).
                self._stats.record_failure(exc, time.monotonic() - started, model)
                raise
            finally:
                self.active_streams -= 1
                if not self.active_streams:
                    self._idle.set()
                self._stats.retries += outcome.retries
                self._stats.fallbacks += outcome.fallback_from is not None
            self._stats.record_success(
                result.model,
                time.monotonic() - started,
                result.eval_count or 0,
                outcome.first_token_seconds,
            )

    async def _keep_stopped(
        self,
        plan: QueryPlan,
        request: GenerationRequest,
        outcome: GenerationOutcome,
        control: QueryStream,
    ) -> None:
        outcome.done_reason = "stopped"
        result = build_result(outcome, request.model, plan.metadata)
        control.set_result(result)
        await self._store_turn(plan, result)

    async def _store_turn(self, plan: QueryPlan, result: OllamaQueryResult) -> None:
        if plan.session_id is None:
            return
        assert self._store is not None
        created = await self._store.append_turn(
            plan.session_id, plan.turn(result), model=result.model
        )
        if created:
            self._on_session_created()
