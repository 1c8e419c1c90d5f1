"""Planning a query in its turn: from a checked ``Query`` (``bot.core.queries``) and its
conversation, the complete ``GenerationRequest``: the model (a vision model for images it
cannot see) and its fallbacks, the tools it may call, the context window, the messages
(system prompt, the history that fits, the question) and the options (defaults < channel
preset < channel options < the question's preset < the question's own options).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.core.config import DEFAULT_NUM_CTX, DEFAULTS
from bot.core.context_window import (
    FROM_CHANNEL,
    FROM_REQUEST,
    MAX_TOOLS_SHARE,
    ContextWindow,
    TokenEstimator,
    choose_window,
    prompt_budget,
)
from bot.core.documents import Document
from bot.core.errors import AttachmentError, ContextOverflowError, VisionUnavailableError
from bot.core.generation import GenerationRequest, model_chain
from bot.core.history import ChatMessage
from bot.core.model_catalog import ModelCatalog
from bot.core.presets import get_preset
from bot.core.prompting import assemble
from bot.core.queries import Query
from bot.core.tools.registry import ToolSet
from bot.core.types import GenerationConfig
from bot.storage.records import SessionSettings

if TYPE_CHECKING:
    from bot.storage.store import SessionStore


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
    keep_alive: str | float = DEFAULTS.keep_alive
    vision_model: str | None = None  # answers images the chosen model cannot see
    max_tool_rounds: int = DEFAULTS.max_tool_rounds


@dataclass(frozen=True, slots=True)
class Plan:
    """A query ready to run: the request, and what planning decided on the way."""

    request: GenerationRequest
    toolset: ToolSet | None  # the tools the bot runs for this answer (None: none)
    max_tool_rounds: int
    tools_unavailable: bool = False  # tools were asked for, but the model cannot call them
    tools_without_room: bool = False  # left out: their schemas would crowd the window
    vision_from: str | None = None  # the model that was asked for but cannot see the images


SUMMARY_HEADING = "Summary of the earlier conversation (older than the messages that follow):"
NOTES_HEADING = "What the member asking has asked you to remember about them:"


def with_context(system: str | None, summary: str | None, notes: Sequence[str]) -> str | None:
    """The system prompt, followed by the conversation's running summary and the asker's
    notes: context the model needs that is neither history nor question."""
    parts = [system] if system else []
    if summary:
        parts.append(f"{SUMMARY_HEADING}\n{summary.strip()}")
    if notes:
        parts.append(NOTES_HEADING + "".join(f"\n- {note}" for note in notes))
    return "\n\n".join(parts) or None


def keep_alive_value(value: str | float) -> str | float:
    """``keep_alive`` as Ollama reads it: a bare number is seconds (negative: forever), but a
    string must be a Go duration with a unit ("5m"), so "-1" or "300" from the settings is
    sent as a number."""
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value


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

    async def plan(self, query: Query) -> Plan:
        """Read the conversation's settings and history (its turn has come) and decide the
        model, the tools, the window, the messages and the options."""
        settings = SessionSettings()
        history: list[ChatMessage] = []
        if query.session_id is not None:
            limit = self._defaults.max_history_length if query.use_history else 0
            assert self._store is not None  # the manager refuses sessions without a database
            settings, history = await self._store.load_context(query.session_id, limit)
        model = query.model or settings.model or self._defaults.model
        vision_from = None
        if query.has_images or any("images" in m for m in history):
            model, vision_from, history = await self._seeing(model, query, history)
        toolset, tools_unavailable = query.toolset, False
        if toolset and not await self._can(model, "tools"):
            toolset, tools_unavailable = None, True
        config, timeout = self._options(query, settings)
        source = FROM_REQUEST if query.config.num_ctx else FROM_CHANNEL
        window = await self.context_window(model, config.num_ctx, source)
        config.num_ctx = window.tokens
        has_system = any(m["role"] == "system" for m in query.new_messages)
        system = query.system_prompt or settings.system_prompt or self._defaults.system_prompt
        system = with_context(system, settings.summary, query.notes)
        # Ollama renders the tools' schemas into the prompt: they take room in the window.
        # The bot's own tools are left out when they would take most of it (a small window):
        # the model then answers with the conversation rather than with the tools alone.
        budget = prompt_budget(window.tokens, config.num_predict)
        own = toolset.schemas() if toolset else []
        own_cost = self.tokens.tools_tokens(own, model)
        tools_without_room = own_cost > budget * MAX_TOOLS_SHARE
        if tools_without_room:
            toolset, own, own_cost = None, [], 0
        tools = [*own, *(query.tools or ())]
        tools_cost = own_cost + self.tokens.tools_tokens(query.tools or [], model)
        system = system if not has_system else None
        messages = self._fit(model, system, history, query, budget, window, tools_cost)
        keep_alive = query.keep_alive
        if keep_alive is None:
            keep_alive = settings.keep_alive or self._defaults.keep_alive
        keep_alive = keep_alive_value(keep_alive)
        request = GenerationRequest(
            models=model_chain(model, self._defaults.fallbacks),
            messages=messages,
            options=config.to_options(),
            format=query.format,
            keep_alive=keep_alive,
            tools=tools or None,
            think=query.think,
            limits=query.limits if timeout is None else replace(query.limits, timeout=timeout),
        )
        return Plan(
            request,
            toolset or None,
            self._defaults.max_tool_rounds,
            tools_unavailable=tools_unavailable,
            tools_without_room=tools_without_room,
            vision_from=vision_from,
        )

    def _options(
        self, query: Query, settings: SessionSettings
    ) -> tuple[GenerationConfig, float | None]:
        """The options in their order of precedence, and a preset's timeout (None: keep
        the query's)."""
        config = self._defaults.generation
        timeout = None
        for preset_name, options in (
            (settings.preset, settings.options),
            (query.preset, {}),
        ):
            if preset_name:
                preset = get_preset(preset_name)
                config = config.merged(preset.options)
                timeout = None if query.timeout_chosen else preset.timeout
            config = config.merged(options)
        return config.merged(query.config.to_options()), timeout

    async def _can(self, model: str, capability: str) -> bool:
        """Whether the model has ``capability``; True when the server can't tell (older
        servers list none): it then answers for itself."""
        if self._catalog is None:
            return True
        capabilities = await self._catalog.capabilities(model)
        return not capabilities or capability in capabilities

    async def model_that_sees(self, model: str | None) -> str | None:
        """The model that will answer a question with images asked of ``model``: None when
        it can see them itself, else VISION_MODEL. Raises VisionUnavailableError when
        neither can: a front end checks this before it shows anything."""
        model = model or self._defaults.model
        if await self._can(model, "vision"):
            return None
        stand_in = self._defaults.vision_model
        if stand_in and self._catalog is not None and await self._catalog.is_available(stand_in):
            return stand_in
        raise VisionUnavailableError(model, stand_in)

    async def _seeing(
        self, model: str, query: Query, history: list[ChatMessage]
    ) -> tuple[str, str | None, list[ChatMessage]]:
        """A model that can see the images: ``model``, else VISION_MODEL. Without one, a
        question with images is refused, and earlier images are left out of the history."""
        try:
            stand_in = await self.model_that_sees(model)
        except VisionUnavailableError:
            if query.has_images:
                raise
        else:
            return (model, None, history) if stand_in is None else (stand_in, model, history)
        without = [
            {k: v for k, v in m.items() if k != "images"} if "images" in m else m  # type: ignore[misc]
            for m in history
        ]
        return model, None, without  # type: ignore[return-value]

    def _fit(
        self,
        model: str,
        system: str | None,
        history: list[ChatMessage],
        query: Query,
        budget: int,
        window: ContextWindow,
        tools_cost: int,
    ) -> list[ChatMessage]:
        """The messages that fit ``budget`` beside the tools (the answer's room is outside it)."""
        budget = max(1, budget - tools_cost)
        if self._defaults.max_history_tokens is not None:
            budget = min(budget, self._defaults.max_history_tokens)

        def cost(message: ChatMessage) -> int:
            return self.tokens.message_tokens(message, model)

        messages = assemble(
            system_prompt=system,
            history=history,
            new_messages=query.request_messages(),
            max_messages=self._defaults.max_history_length,
            max_tokens=budget,
            cost=cost,
        )
        needed = sum(cost(m) for m in messages) + tools_cost
        if needed > window.tokens:
            # Ollama would drop the start of it silently, llama.cpp refuse it: say so now.
            raise ContextOverflowError(tokens=needed, window=window.tokens)
        return messages

    async def ensure_fits(
        self,
        documents: Sequence[Document],
        model: str,
        num_ctx: int | None = None,
        num_predict: int | None = None,
    ) -> None:
        """Refuse files whose text alone would not fit the model's window (AttachmentError
        TOO_LONG naming the largest), before the question joins the queue."""
        if not documents:
            return
        window = await self.context_window(model, num_ctx)
        budget = prompt_budget(window.tokens, num_predict)
        needed = sum(self.tokens.text_tokens(d.text, model) for d in documents)
        if needed > budget:
            largest = max(documents, key=lambda d: d.characters)
            raise AttachmentError(
                largest.filename,
                AttachmentError.TOO_LONG,
                f"`{largest.filename}` is too long for the model's context window (about "
                f"{needed:,} tokens; {budget:,} fit with room for the answer).",
            )

    async def context_window(
        self, model: str, chosen: int | None = None, source: str = FROM_REQUEST
    ) -> ContextWindow:
        """The window a query on ``model`` runs with: ``chosen``, else the default, capped."""
        model_max = None
        if self._catalog is not None:
            model_max = await self._catalog.context_length(model)
        return choose_window(chosen, source, self._defaults.num_ctx, model_max)
