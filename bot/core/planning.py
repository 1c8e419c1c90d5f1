"""Planning a query: what was asked (``Query``), checked at once; then, in the query's turn,
the complete ``GenerationRequest``: the model and its fallbacks, the context window, the
messages (system prompt, the history that fits, the question) and the options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from bot.core.config import DEFAULT_NUM_CTX
from bot.core.context_window import (
    FROM_CHANNEL,
    FROM_REQUEST,
    ContextWindow,
    TokenEstimator,
    choose_window,
    prompt_budget,
)
from bot.core.errors import ContextOverflowError, InvalidRequestError
from bot.core.events import EventCallback
from bot.core.generation import GenerationLimits, GenerationRequest, model_chain
from bot.core.history import ChatMessage
from bot.core.model_catalog import ModelCatalog
from bot.core.prompting import assemble, check_size, normalize_messages, user_content
from bot.core.types import GenerationConfig, OllamaQueryResult
from bot.storage.records import SessionSettings

if TYPE_CHECKING:
    from bot.storage.store import SessionStore

TOOL_CHOICES = (None, "auto", "none", "required")
# The accepted range of each generation option; the same rules hold for a query's options
# and for the ones stored with a conversation (/settings options, the CLI).
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "top_k": (1, 1000),
    "num_predict": (-2, 1_000_000),  # -1: no limit, -2: until the context is full
    "repeat_penalty": (0.0, 10.0),
    "num_ctx": (256, 10_000_000),
    "seed": (-(2**63), 2**63 - 1),
}
WHOLE_NUMBER_OPTIONS = frozenset({"top_k", "num_predict", "num_ctx", "seed"})
MAX_STOP_SEQUENCES = 16
MAX_STOP_SEQUENCE_CHARS = 200
MAX_RETRIES_ALLOWED = 10


class QueryArgs(TypedDict, total=False):
    """The keyword arguments of ``OllamaRequestManager.query()`` (seed 000), but ``stream``."""

    model: str | None
    messages: Sequence[Mapping[str, Any]] | None
    prompt: str | None
    system_prompt: str | None
    options: GenerationConfig | None  # all sampling options at once; the keywords below win
    temperature: float | None
    top_p: float | None
    top_k: int | None
    num_predict: int | None
    stop: list[str] | None
    repeat_penalty: float | None
    seed: int | None
    num_ctx: int | None
    format: Literal["text", "json"] | dict[str, Any] | None
    keep_alive: str | int | None
    session_id: str | None
    timeout_ms: int | None
    max_retries: int | None
    retry_backoff: float | None
    metadata: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    tool_choice: str | None
    extra_context: str | None
    documents: list[str] | None
    think: bool | Literal["low", "medium", "high"] | None
    on_event: EventCallback | None


QUERY_ARGS = frozenset(QueryArgs.__annotations__)


def validate_options(options: Mapping[str, Any]) -> None:
    """Refuse a generation option of the wrong type or out of its range (None means unset)."""
    for name, (low, high) in OPTION_RANGES.items():
        value = options.get(name)
        if value is None:
            continue
        whole = name in WHOLE_NUMBER_OPTIONS
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            kind = "a whole number" if whole else "a number"
            raise InvalidRequestError(f"{name} must be {kind}, not {value!r}.")
        # NaN fails every comparison, so it is refused here along with infinities.
        if not low <= value <= high:
            raise InvalidRequestError(f"{name} must be between {low:g} and {high:g}.")
    stop = options.get("stop")
    if stop is not None and (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_SEQUENCE_CHARS for s in stop)
    ):
        raise InvalidRequestError(
            f"stop must be a list of at most {MAX_STOP_SEQUENCES} strings of "
            f"1 to {MAX_STOP_SEQUENCE_CHARS} characters."
        )


def validate_query(
    *,
    prompt: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    overrides: Mapping[str, Any],
    format: Any,
    timeout_ms: int | None,
    max_retries: int | None,
    retry_backoff: float | None,
    tool_choice: str | None,
) -> None:
    """Refuse a bad query before it touches the database or Ollama, naming what is wrong."""
    if prompt is None and not messages:
        raise InvalidRequestError("Give a prompt or a list of messages.")
    if prompt is not None and not prompt.strip():
        raise InvalidRequestError("The prompt is empty.")
    validate_options(overrides)
    if format not in (None, "text", "json") and not isinstance(format, dict):
        raise InvalidRequestError('format must be "text", "json" or a JSON schema object.')
    if timeout_ms is not None and timeout_ms <= 0:
        raise InvalidRequestError("timeout_ms must be positive.")
    if max_retries is not None and not 0 <= max_retries <= MAX_RETRIES_ALLOWED:
        raise InvalidRequestError(f"max_retries must be between 0 and {MAX_RETRIES_ALLOWED}.")
    if retry_backoff is not None and retry_backoff < 0:
        raise InvalidRequestError("retry_backoff must not be negative.")
    if tool_choice not in TOOL_CHOICES:
        raise InvalidRequestError(f"tool_choice must be one of {TOOL_CHOICES[1:]}.")


@dataclass(frozen=True, slots=True)
class Query:
    """A checked question, as its caller asked it; the conversation's settings and history
    join it only in its turn (``QueryPlanner.plan``)."""

    new_messages: list[ChatMessage]
    config: GenerationConfig  # the options the caller chose; None fields are unchosen
    session_id: str | None
    model: str | None
    system_prompt: str | None
    use_history: bool  # False when the caller gave the whole conversation
    format: str | dict[str, Any] | None
    keep_alive: str | float | None
    tools: list[Mapping[str, Any]] | None
    think: bool | str | None
    limits: GenerationLimits  # the manager's, with this call's overrides
    metadata: dict[str, Any] = field(default_factory=dict)

    def turn(self, result: OllamaQueryResult) -> list[ChatMessage]:
        """The messages a completed query adds to its conversation."""
        asked = [m for m in self.new_messages if m["role"] in ("user", "tool")][-1:]
        answer: ChatMessage = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            answer["tool_calls"] = result.tool_calls
        return [*asked, answer]


def build_query(
    args: QueryArgs, limits: GenerationLimits, keep_alive: str | float, *, restartable: bool
) -> Query:
    """The checked ``Query`` of a call: the options object with the keyword options over it,
    the manager's limits and keep-alive for what the call leaves out. Raises
    InvalidRequestError."""
    config = (args.get("options") or GenerationConfig()).merged(
        {name: args.get(name) for name in GenerationConfig.field_names()}
    )
    prompt, messages = args.get("prompt"), args.get("messages")
    timeout_ms, max_retries = args.get("timeout_ms"), args.get("max_retries")
    retry_backoff, tool_choice = args.get("retry_backoff"), args.get("tool_choice")
    format_ = args.get("format")
    validate_query(
        prompt=prompt,
        messages=messages,
        overrides=config.to_options(),
        format=format_,
        timeout_ms=timeout_ms,
        max_retries=max_retries,
        retry_backoff=retry_backoff,
        tool_choice=tool_choice,
    )
    new_messages = normalize_messages(messages or [])
    content = user_content(prompt, args.get("extra_context"), args.get("documents"))
    if content is not None:
        new_messages.append({"role": "user", "content": content})
    check_size(new_messages)
    chosen_keep_alive = args.get("keep_alive")
    return Query(
        new_messages=new_messages,
        config=config,
        session_id=args.get("session_id"),
        model=args.get("model"),
        system_prompt=args.get("system_prompt"),
        use_history=messages is None,
        format=None if format_ in (None, "text") else format_,
        keep_alive=keep_alive if chosen_keep_alive is None else chosen_keep_alive,
        tools=None if tool_choice == "none" else args.get("tools"),
        think=args.get("think"),
        limits=replace(
            limits,
            timeout=(timeout_ms / 1000) if timeout_ms else limits.timeout,
            max_retries=limits.max_retries if max_retries is None else max_retries,
            retry_backoff=limits.retry_backoff if retry_backoff is None else retry_backoff,
            restartable=restartable,
        ),
        metadata=dict(args.get("metadata") or {}),
    )


@dataclass(frozen=True, slots=True)
class QueryDefaults:
    """The manager's defaults, as they were when it started."""

    model: str
    system_prompt: str | None
    max_history_length: int
    max_history_tokens: int | None
    generation: GenerationConfig
    fallbacks: tuple[str, ...] = ()
    num_ctx: int = DEFAULT_NUM_CTX  # the window asked for when nobody chose one


class QueryPlanner:
    """Turns a ``Query`` and its conversation into a complete ``GenerationRequest``."""

    def __init__(
        self,
        store: SessionStore | None,  # None: no database, no conversations
        catalog: ModelCatalog | None,
        defaults: QueryDefaults,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._defaults = defaults
        self.tokens = TokenEstimator()

    @property
    def default_model(self) -> str:
        return self._defaults.model

    async def plan(self, query: Query) -> GenerationRequest:
        """Read the conversation's settings and history (its turn has come) and decide the
        model, the window, the messages and the options."""
        settings = SessionSettings()
        history: list[ChatMessage] = []
        if query.session_id is not None:
            limit = self._defaults.max_history_length if query.use_history else 0
            assert self._store is not None  # the manager refuses sessions without a database
            settings, history = await self._store.load_context(query.session_id, limit)
        model = query.model or settings.model or self._defaults.model
        chosen = query.config.to_options()
        config = self._defaults.generation.merged(settings.options).merged(chosen)
        source = FROM_REQUEST if query.config.num_ctx else FROM_CHANNEL
        window = await self.context_window(model, config.num_ctx, source)
        config.num_ctx = window.tokens
        has_system = any(m["role"] == "system" for m in query.new_messages)
        system = query.system_prompt or settings.system_prompt or self._defaults.system_prompt
        messages = self._fit(model, system if not has_system else None, history, query, window)
        return GenerationRequest(
            models=model_chain(model, self._defaults.fallbacks),
            messages=messages,
            options=config.to_options(),
            format=query.format,
            keep_alive=query.keep_alive,
            tools=query.tools,
            think=query.think,
            limits=query.limits,
        )

    def _fit(
        self,
        model: str,
        system: str | None,
        history: list[ChatMessage],
        query: Query,
        window: ContextWindow,
    ) -> list[ChatMessage]:
        """The messages that fit the window with room left for the answer."""
        budget = prompt_budget(window.tokens, query.config.num_predict)
        if self._defaults.max_history_tokens is not None:
            budget = min(budget, self._defaults.max_history_tokens)

        def cost(message: ChatMessage) -> int:
            return self.tokens.message_tokens(message, model)

        messages = assemble(
            system_prompt=system,
            history=history,
            new_messages=query.new_messages,
            max_messages=self._defaults.max_history_length,
            max_tokens=budget,
            cost=cost,
        )
        needed = sum(cost(m) for m in messages)
        if needed > window.tokens:
            # Ollama would drop the start of it silently, llama.cpp refuse it: say so now.
            raise ContextOverflowError(tokens=needed, window=window.tokens)
        return messages

    async def context_window(
        self, model: str, chosen: int | None = None, source: str = FROM_REQUEST
    ) -> ContextWindow:
        """The window a query on ``model`` runs with: ``chosen``, else the default, capped."""
        model_max = None
        if self._catalog is not None:
            model_max = await self._catalog.context_length(model)
        return choose_window(chosen, source, self._defaults.num_ctx, model_max)
