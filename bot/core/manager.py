"""OllamaRequestManager: the public API the bot, the CLI and tests use (seed 000)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

from bot.core.config import DEFAULTS, Settings
from bot.core.errors import InvalidRequestError
from bot.core.generation import GenerationLimits
from bot.core.hosts.pool import HostPool
from bot.core.hosts.spec import HostSpec
from bot.core.knowledge.base import KnowledgeBase
from bot.core.manager_models import ModelMethods
from bot.core.manager_sessions import SessionMethods
from bot.core.memory.service import Memory
from bot.core.memory.summary import SUMMARY_MAX_TOKENS
from bot.core.model_catalog import ModelCatalog
from bot.core.planning import QueryDefaults
from bot.core.queries import (
    QUERY_ARGS,
    QueryArgs,
    build_query,
)
from bot.core.query_stream import QueryStream
from bot.core.queueing import RequestQueue
from bot.core.services import Services, close_services, open_services
from bot.core.stats import RequestStats
from bot.core.tools.builtin import builtin_tools, no_conversations
from bot.core.tools.mcp_config import McpServerConfig, load_mcp_config
from bot.core.tools.mcp_servers import McpHub
from bot.core.tools.registry import ToolRegistry
from bot.core.types import (
    GenerationConfig,
    OllamaQueryResult,
)

if TYPE_CHECKING:  # a manager without a database never loads SQLAlchemy
    from bot.core.runner.benchmarks import Benchmarks
    from bot.storage import SessionStore
    from bot.storage.state import BotStateStore

log = logging.getLogger(__name__)

NO_DATABASE = "This request manager was started without a database: it keeps no sessions."


class OllamaRequestManager(SessionMethods, ModelMethods):
    """Chat with Ollama through persistent sessions, with retries, fallback and fair queueing,
    on one Ollama host or several.

    Its session methods (seed 000's get_session, create_session...) are in
    ``bot.core.manager_sessions``, its model and host methods in ``bot.core.manager_models``."""

    def __init__(
        self,
        host: str = DEFAULTS.ollama_host,
        hosts: Sequence[HostSpec | str] = DEFAULTS.ollama_hosts,  # when given, not ``host``
        default_model: str = DEFAULTS.default_model,
        default_system_prompt: str | None = DEFAULTS.system_prompt,
        max_history_length: int = DEFAULTS.max_history_messages,
        max_history_tokens: int | None = DEFAULTS.max_history_tokens,
        database_url: str | None = DEFAULTS.database_url,  # None: no database, no sessions
        fallback_models: Sequence[str] = DEFAULTS.fallback_models,
        max_concurrent_requests: int = DEFAULTS.max_concurrent_requests,
        request_timeout: float = DEFAULTS.request_timeout,
        first_token_timeout: float = DEFAULTS.first_token_timeout,
        stream_idle_timeout: float = DEFAULTS.stream_idle_timeout,
        max_retries: int = DEFAULTS.max_retries,
        retry_backoff: float = DEFAULTS.retry_backoff,
        keep_alive: str | float = DEFAULTS.keep_alive,
        generation_defaults: GenerationConfig | None = None,
        default_num_ctx: int = DEFAULTS.default_num_ctx,
        shutdown_grace: float = DEFAULTS.shutdown_grace_seconds,
        vision_model: str | None = DEFAULTS.vision_model,
        max_tool_rounds: int = DEFAULTS.max_tool_rounds,
        tool_timeout: float = DEFAULTS.tool_timeout,
        mcp_servers: Sequence[McpServerConfig] = (),
        embedding_model: str = DEFAULTS.embedding_model,
        knowledge_passages: int = DEFAULTS.knowledge_passages,
        knowledge_min_score: float = DEFAULTS.knowledge_min_score,
        summary_model: str | None = DEFAULTS.summary_model,
        conversation_memory: bool = DEFAULTS.conversation_memory,
    ) -> None:
        self.host = host
        chosen = [h if isinstance(h, HostSpec) else HostSpec(h) for h in hosts]
        self.host_specs: tuple[HostSpec, ...] = tuple(chosen) or (HostSpec(host),)
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
        self.vision_model = vision_model  # answers images the chosen model cannot see
        self.max_tool_rounds = max_tool_rounds
        self.embedding_model = embedding_model
        self.knowledge_passages = knowledge_passages
        self.knowledge_min_score = knowledge_min_score
        self.summary_model = summary_model  # None: each conversation's own model
        self.memory: Memory | None = None  # with a database, from start()
        # Off: no turn embeddings, no running summary (members' notes still work).
        self.conversation_memory = conversation_memory
        self.queue = RequestQueue(max_concurrent_requests)
        self.stats = RequestStats()
        # The tools a model may call (built-in ones from start(); MCP servers' as they come).
        self.tools = ToolRegistry()
        self.mcp = McpHub(mcp_servers, self.tools, tool_timeout=tool_timeout)
        self._session_count = 0
        self._services: Services | None = None
        self._knowledge: KnowledgeBase | None = None
        self._benchmarks: Benchmarks | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OllamaRequestManager:
        """The manager as the bot and the CLI build it from settings."""
        options = settings.manager_options()
        if "mcp_servers" not in overrides and settings.mcp_config:
            options["mcp_servers"] = load_mcp_config(settings.mcp_config)  # ConfigError
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
            fallbacks=self.fallback_models,
            num_ctx=self.default_num_ctx,
            keep_alive=self.keep_alive,
            vision_model=self.vision_model,
            max_tool_rounds=self.max_tool_rounds,
        )
        self._services = await open_services(
            self.database_url,
            self.host_specs,
            request_timeout=self.request_timeout,
            queue=self.queue,
            stats=self.stats,
            defaults=defaults,
            on_session_created=self._note_session_created,
            embedding_model=self.embedding_model,
            limits=self.limits,
        )
        self._session_count = self._services.session_count
        store = self._services.store
        if store is not None:
            from bot.storage.memory import MemoryStore

            self.memory = Memory(
                MemoryStore(store),
                self.embedder,
                self._summarize,
                max_history_messages=self.max_history_length,
            )
            if self.conversation_memory:
                self._services.executor.on_turn_stored = self.memory.on_turn_stored
                self.memory.start()
            for tool in self.memory.tools():
                self.tools.add(tool)
        by_meaning = self.memory.search if self.memory else None
        for tool in builtin_tools(store.search_messages if store else no_conversations, by_meaning):
            self.tools.add(tool)
        await self.mcp.start()  # at most its connect timeout; failing servers retry later
        log.info(
            "request manager ready (ollama at %s, %d sessions)",
            ", ".join(str(h) for h in self.host_specs),
            self._session_count,
        )

    async def _summarize(self, prompt: str, model: str | None) -> str:
        """The running summary's model call: SUMMARY_MODEL, else the conversation's, without
        thinking (a summary needs none) and bounded."""
        model = self.summary_model or model
        answer = await self.ask(
            prompt=prompt, model=model, num_predict=SUMMARY_MAX_TOKENS, think=False
        )
        return answer.content

    @property
    def limits(self) -> GenerationLimits:
        """How long a request may take and how it is tried again, from the settings."""
        return GenerationLimits(
            timeout=self.request_timeout,
            first_token_timeout=self.first_token_timeout,
            idle_timeout=self.stream_idle_timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
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
        default ``shutdown_grace``); questions still waiting are refused (ShuttingDownError)."""
        if self._services is not None:
            self._services.executor.refuse_waiting()
        await self.wait_idle(grace)
        await self.mcp.close()
        if self.memory is not None:
            await self.memory.close()
            self.memory = None
        if self._knowledge is not None:
            await self._knowledge.close()
            self._knowledge = None
        self._benchmarks = None
        services, self._services = self._services, None
        if services is not None:
            await close_services(services)
            log.info("request manager closed")

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
    def hosts(self) -> HostPool:
        return self.services.hosts

    @property
    def catalog(self) -> ModelCatalog:
        return self.services.catalog

    # queries -------------------------------------------------------------------------------
    @overload
    async def query(
        self, *, stream: Literal[False] = False, **args: Unpack[QueryArgs]
    ) -> OllamaQueryResult: ...

    @overload
    async def query(self, *, stream: Literal[True], **args: Unpack[QueryArgs]) -> QueryStream: ...

    async def query(
        self, *, stream: bool = False, **args: Unpack[QueryArgs]
    ) -> OllamaQueryResult | QueryStream:
        """Ask a model (seed 000's API): the result, or with ``stream=True`` a QueryStream of
        its text. The same as ``ask()`` and ``stream()``.

        With ``session_id`` the session's history, model, system prompt and options apply,
        and the turn is stored once it completes (never a partial one).
        """
        if stream:
            return self.stream(**args)
        return await self.ask(**args)

    async def ask(self, **args: Unpack[QueryArgs]) -> OllamaQueryResult:
        """Ask and wait for the whole answer; a failure midway is retried from the start."""
        return await self._stream(args, restartable=True).collect()

    def stream(self, **args: Unpack[QueryArgs]) -> QueryStream:
        """Ask; the answer's text streams as the model writes it (see QueryStream).

        Checked at once (a bad argument raises here); the query joins its conversation's
        queue when the stream is first iterated, in call order.
        """
        return self._stream(args, restartable=False)

    def _stream(self, args: QueryArgs, *, restartable: bool) -> QueryStream:
        unknown = set(args) - QUERY_ARGS
        if unknown:
            raise TypeError(f"query() got unexpected arguments: {', '.join(sorted(unknown))}")
        if args.get("session_id") is not None and self.database_url is None:
            raise InvalidRequestError(NO_DATABASE)
        query = build_query(args, self.limits, restartable=restartable)
        return self.services.executor.stream(query, args.get("on_event"))

    # stores that need the database ------------------------------------------------------------
    @property
    def knowledge(self) -> KnowledgeBase:
        """The servers' knowledge bases (needs the database)."""
        if self._knowledge is None:
            if self.services.engine is None:
                raise InvalidRequestError(NO_DATABASE)
            from bot.storage.engine import create_sessionmaker
            from bot.storage.knowledge import KnowledgeStore

            store = KnowledgeStore(create_sessionmaker(self.services.engine))
            self._knowledge = KnowledgeBase(
                store,
                self.embedder,
                passages=self.knowledge_passages,
                min_score=self.knowledge_min_score,
            )
            if self.services.coordination is not None:  # documents other processes change
                from bot.storage.notify import KNOWLEDGE

                self.services.coordination.follow(KNOWLEDGE, self._knowledge.forget)
        return self._knowledge

    @property
    def benchmarks(self) -> Benchmarks:
        """The servers' kept benchmark runs (needs the database)."""
        if self._benchmarks is None:
            if self.services.engine is None:
                raise InvalidRequestError(NO_DATABASE)
            from bot.core.runner.benchmarks import Benchmarks
            from bot.storage.bench import BenchStore
            from bot.storage.engine import create_sessionmaker

            self._benchmarks = Benchmarks(
                self, BenchStore(create_sessionmaker(self.services.engine))
            )
        return self._benchmarks

    # statistics ----------------------------------------------------------------------------
    def get_statistics(self) -> dict[str, Any]:
        return self.stats.snapshot(
            active_sessions=self._session_count,
            queue_depth=self.queue.depth,
            running_requests=self.queue.running,
            active_streams=self._services.executor.active_streams if self._services else 0,
            hosts=[r.as_dict() for r in self.hosts.reports()] if self._services else [],
        )
