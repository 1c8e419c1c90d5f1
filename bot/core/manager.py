"""OllamaRequestManager: the public API the bot, the CLI and tests use (seed 000)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from bot.core.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_NUM_CTX,
    DEFAULT_OLLAMA_HOST,
    DEFAULT_SHUTDOWN_GRACE,
    Settings,
)
from bot.core.context_window import ContextWindow, TokenEstimator
from bot.core.errors import InvalidRequestError
from bot.core.events import EventCallback
from bot.core.execution import QueryDefaults
from bot.core.generation import GenerationRequest
from bot.core.history import ChatMessage, ConversationHistory
from bot.core.model_catalog import ModelCatalog
from bot.core.ollama_client import OllamaClient
from bot.core.prompting import check_size, normalize_messages, user_content
from bot.core.query import QueryPlan, validate_options, validate_query
from bot.core.queueing import RequestQueue
from bot.core.services import Services, close_services, open_services
from bot.core.stats import RequestStats
from bot.core.types import (
    GenerationConfig,
    HealthStatus,
    ModelDetails,
    ModelInfo,
    PullProgress,
)
from bot.storage.records import SessionSettings

if TYPE_CHECKING:  # a manager without a database never loads SQLAlchemy
    from bot.storage import SessionStore
    from bot.storage.state import BotStateStore

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 120_000
NO_DATABASE = "This request manager was started without a database: it keeps no sessions."


class OllamaRequestManager:
    """Chat with Ollama through persistent sessions, with retries, fallback and fair queueing."""

    def __init__(
        self,
        host: str = DEFAULT_OLLAMA_HOST,
        default_model: str = "llama3.2",
        default_system_prompt: str | None = None,
        max_history_length: int = 50,
        max_history_tokens: int | None = None,
        database_url: str | None = DEFAULT_DATABASE_URL,  # None: no database, no sessions
        fallback_models: Sequence[str] = (),
        max_concurrent_requests: int = 4,
        request_timeout: float = DEFAULT_TIMEOUT_MS / 1000,
        first_token_timeout: float = 120.0,
        stream_idle_timeout: float = 60.0,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        keep_alive: str | float = "5m",
        generation_defaults: GenerationConfig | None = None,
        default_num_ctx: int = DEFAULT_NUM_CTX,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    ) -> None:
        self.host = host
        self.default_model = default_model
        self.default_system_prompt = default_system_prompt
        self.max_history_length = max_history_length
        self.max_history_tokens = max_history_tokens
        self.database_url = database_url
        self.fallback_models = tuple(fallback_models)
        self.request_timeout = request_timeout
        self.first_token_timeout = first_token_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.keep_alive = keep_alive
        self.generation_defaults = generation_defaults or GenerationConfig()
        self.default_num_ctx = default_num_ctx
        # On close, answers in flight get this long to finish and store their turn.
        self.shutdown_grace = shutdown_grace
        self.queue = RequestQueue(max_concurrent_requests)
        self.stats = RequestStats()
        self._session_count = 0
        self._services: Services | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OllamaRequestManager:
        """The manager as the bot and the CLI build it from settings."""
        options: dict[str, Any] = {
            "host": settings.ollama_host,
            "default_model": settings.default_model,
            "default_system_prompt": settings.system_prompt,
            "max_history_length": settings.max_history_messages,
            "max_history_tokens": settings.max_history_tokens,
            "database_url": settings.database_url,
            "fallback_models": settings.fallback_models,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "request_timeout": settings.request_timeout,
            "first_token_timeout": settings.first_token_timeout,
            "stream_idle_timeout": settings.stream_idle_timeout,
            "max_retries": settings.max_retries,
            "retry_backoff": settings.retry_backoff,
            "keep_alive": settings.keep_alive,
            "default_num_ctx": settings.default_num_ctx,
            "shutdown_grace": settings.shutdown_grace_seconds,
        }
        return cls(**{**options, **overrides})

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the database (migrating it to head) and the pooled Ollama client."""
        if self._services is not None:
            return
        defaults = QueryDefaults(
            model=self.default_model,
            system_prompt=self.default_system_prompt,
            max_history_length=self.max_history_length,
            max_history_tokens=self.max_history_tokens,
            generation=self.generation_defaults,
            num_ctx=self.default_num_ctx,
        )
        self._services = await open_services(
            self.database_url,
            self.host,
            request_timeout=self.request_timeout,
            queue=self.queue,
            stats=self.stats,
            defaults=defaults,
            on_session_created=self._note_session_created,
        )
        self._session_count = self._services.session_count
        log.info(
            "request manager ready (ollama at %s, %d sessions)", self.host, self._session_count
        )

    def _note_session_created(self) -> None:
        self._session_count += 1

    async def wait_idle(self, grace: float | None = None) -> bool:
        """Wait (up to ``grace`` s, default ``shutdown_grace``) until no answer is running;
        False if some still are."""
        if self._services is None:
            return True
        return await self._services.executor.wait_idle(
            self.shutdown_grace if grace is None else grace
        )

    async def close(self, grace: float | None = None) -> None:
        """Release everything, after letting answers in flight finish (up to ``grace`` s,
        default ``shutdown_grace``)."""
        await self.wait_idle(grace)
        services, self._services = self._services, None
        if services is not None:
            await close_services(services)

    async def __aenter__(self) -> OllamaRequestManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("OllamaRequestManager.start() has not been awaited")
        return self._services

    @property
    def store(self) -> SessionStore:
        if self.services.store is None:
            raise InvalidRequestError(NO_DATABASE)
        return self.services.store

    @property
    def state(self) -> BotStateStore:
        if self.services.state is None:
            raise InvalidRequestError(NO_DATABASE)
        return self.services.state

    @property
    def client(self) -> OllamaClient:
        return self.services.client

    @property
    def catalog(self) -> ModelCatalog:
        return self.services.catalog

    # queries -------------------------------------------------------------------------------
    async def query(
        self,
        model: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        prompt: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        num_predict: int | None = None,
        stop: list[str] | None = None,
        repeat_penalty: float | None = None,
        seed: int | None = None,
        format: Literal["text", "json"] | dict[str, Any] | None = None,
        stream: bool = False,
        keep_alive: str | int | None = None,
        session_id: str | None = None,
        timeout_ms: int | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        metadata: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        extra_context: str | None = None,
        documents: list[str] | None = None,
        think: bool | Literal["low", "medium", "high"] | None = None,
        on_event: EventCallback | None = None,
        num_ctx: int | None = None,
    ) -> Any:
        """Ask a model. Returns an OllamaQueryResult, or a QueryStream of text when streaming.

        With ``session_id`` the session's history, model, system prompt and options apply,
        and the turn is stored once it completes (never a partial one).
        """
        overrides = {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "num_predict": num_predict,
            "stop": stop,
            "repeat_penalty": repeat_penalty,
            "seed": seed,
            "num_ctx": num_ctx,
        }
        validate_query(
            prompt=prompt,
            messages=messages,
            overrides=overrides,
            format=format,
            timeout_ms=timeout_ms,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            tool_choice=tool_choice,
        )
        if session_id is not None and self.database_url is None:
            raise InvalidRequestError(NO_DATABASE)
        new_messages = normalize_messages(messages or [])
        content = user_content(prompt, extra_context, documents)
        if content is not None:
            new_messages.append({"role": "user", "content": content})
        check_size(new_messages)
        plan = QueryPlan(
            session_id=session_id,
            model=model,
            system_prompt=system_prompt,
            new_messages=new_messages,
            use_history=messages is None,
            overrides=overrides,
            request=GenerationRequest(
                model="",
                messages=[],
                options={},
                fallbacks=self.fallback_models,
                format=None if format in (None, "text") else format,
                keep_alive=self.keep_alive if keep_alive is None else keep_alive,
                tools=None if tool_choice == "none" else tools,
                think=think,
                timeout=(timeout_ms / 1000) if timeout_ms else self.request_timeout,
                first_token_timeout=self.first_token_timeout,
                idle_timeout=self.stream_idle_timeout,
                max_retries=self.max_retries if max_retries is None else max_retries,
                retry_backoff=self.retry_backoff if retry_backoff is None else retry_backoff,
                restartable=not stream,
            ),
            metadata=dict(metadata or {}),
        )
        # Nothing above awaited: the query joins its session's queue in call order.
        query_stream = self.services.executor.stream(plan, on_event)
        if stream:
            return query_stream
        async for _ in query_stream:
            pass
        assert query_stream.result is not None
        return query_stream.result

    # sessions ------------------------------------------------------------------------------
    def _history(self, session_id: str, system_prompt: str | None, messages: list[ChatMessage]):
        return ConversationHistory(
            session_id,
            max_length=self.max_history_length,
            max_tokens=self.max_history_tokens,
            system_prompt=system_prompt or self.default_system_prompt,
            messages=messages,
        )

    async def get_session(self, session_id: str) -> ConversationHistory | None:
        record = await self.store.get(session_id)
        if record is None:
            return None
        messages = await self.store.messages(session_id, limit=self.max_history_length)
        history = self._history(session_id, record.settings.system_prompt, messages)
        history.created_at = record.created_at
        return history

    async def create_session(
        self, session_id: str, system_prompt: str | None = None
    ) -> ConversationHistory:
        """Start the session afresh (an existing one with this id is replaced)."""
        existed = await self.store.get(session_id) is not None
        record = await self.store.reset(session_id, system_prompt)
        self._session_count += not existed
        history = self._history(session_id, system_prompt, [])
        history.created_at = record.created_at
        return history

    async def delete_session(self, session_id: str) -> bool:
        deleted = await self.store.delete(session_id)
        self._session_count -= deleted
        return deleted

    async def clear_all_sessions(self) -> int:
        count = await self.store.delete_all()
        self._session_count = 0
        return count

    async def delete_idle_sessions(self, older_than: datetime) -> int:
        """Delete sessions not used since ``older_than``; returns how many went."""
        deleted = await self.store.delete_idle(older_than)
        self._session_count = max(0, self._session_count - deleted)
        return deleted

    async def get_session_settings(self, session_id: str) -> SessionSettings:
        record = await self.store.get(session_id)
        return record.settings if record else SessionSettings()

    async def update_session_settings(self, session_id: str, **changes: Any) -> SessionSettings:
        """Change a session's model, system_prompt, options or scope (None resets one)."""
        unknown = set(changes) - {"model", "system_prompt", "options", "scope"}
        if unknown:
            raise InvalidRequestError(f"Unknown session settings: {', '.join(sorted(unknown))}")
        if changes.get("options"):
            bad = set(changes["options"]) - set(GenerationConfig.field_names())
            if bad:
                raise InvalidRequestError(f"Unknown generation options: {', '.join(sorted(bad))}")
            # Stored options are sent with every later question: refuse now what Ollama
            # (or our own query checks) would refuse then, and store nothing.
            validate_options(changes["options"])
        settings, created = await self.store.update_settings(session_id, **changes)
        self._session_count += created
        return settings

    # models --------------------------------------------------------------------------------
    async def list_models(self, force_refresh: bool = False) -> list[ModelInfo]:
        return await self.catalog.list(force_refresh=force_refresh)

    async def is_model_available(self, name: str) -> bool:
        return await self.catalog.is_available(name)

    async def context_window(
        self, model: str | None = None, num_ctx: int | None = None
    ) -> ContextWindow:
        """The window a query on ``model`` runs with: ``num_ctx``, else the default, capped
        at the model's maximum."""
        return await self.services.executor.context_window(model or self.default_model, num_ctx)

    @property
    def tokens(self) -> TokenEstimator:
        """Token estimates per model, learned from the answers so far."""
        return self.services.executor.tokens

    async def show_model(self, name: str) -> ModelDetails:
        return await self.client.show(name)

    async def pull_model(
        self, name: str, progress: Callable[[PullProgress], Any] | None = None
    ) -> bool:
        return await self.catalog.pull(name, progress)

    async def embed(
        self, texts: str | Sequence[str], model: str | None = None
    ) -> list[list[float]]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items:
            return []
        if sum(len(t) for t in items) > 1_000_000:
            raise InvalidRequestError("Too much text to embed in one request.")
        return await self.client.embed(model or self.default_model, items)

    async def health_check(self) -> HealthStatus:
        return await self.catalog.health()

    # statistics ----------------------------------------------------------------------------
    def get_statistics(self) -> dict[str, Any]:
        return self.stats.snapshot(
            active_sessions=self._session_count,
            queue_depth=self.queue.depth,
            running_requests=self.queue.running,
            active_streams=self._services.executor.active_streams if self._services else 0,
        )
