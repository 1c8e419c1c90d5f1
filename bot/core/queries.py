"""What a caller asks (``QueryArgs``, seed 000's keywords), checked at once into a ``Query``.

Nothing here reads the database or asks Ollama: a bad argument is refused before the query
joins its queue. ``bot.core.planning`` completes a Query in its turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict

from bot.core.errors import InvalidRequestError
from bot.core.events import EventCallback
from bot.core.generation import GenerationLimits
from bot.core.history import ChatMessage
from bot.core.knowledge.prompt import with_sources
from bot.core.presets import get_preset
from bot.core.prompting import check_size, normalize_messages, user_content
from bot.core.structured import check_format
from bot.core.tools.registry import ToolSet
from bot.core.types import GenerationConfig, OllamaQueryResult

# An album is a handful of pictures; every image costs a vision model ~1k tokens of context.
MAX_IMAGES_PER_QUESTION = 4

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
    preset: str | None  # a named preset of options (bot.core.presets); explicit ones win
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
    images: Sequence[bytes] | None  # image files for the question (see bot.core.images)
    # Passages of a knowledge base for this question, numbered for citation ([]: none was
    # relevant). Shown to the model with the question, not stored with the turn.
    sources: Sequence[str] | None
    notes: Sequence[str] | None  # what the asker asked the bot to remember (system prompt)
    toolset: ToolSet | None  # tools the bot runs itself, in a loop (see bot.core.tools)
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
    check_format(format)
    if timeout_ms is not None and timeout_ms <= 0:
        raise InvalidRequestError("timeout_ms must be positive.")
    if max_retries is not None and not 0 <= max_retries <= MAX_RETRIES_ALLOWED:
        raise InvalidRequestError(f"max_retries must be between 0 and {MAX_RETRIES_ALLOWED}.")
    if retry_backoff is not None and retry_backoff < 0:
        raise InvalidRequestError("retry_backoff must not be negative.")
    if tool_choice not in TOOL_CHOICES:
        raise InvalidRequestError(f"tool_choice must be one of {TOOL_CHOICES[1:]}.")


# Go's time.ParseDuration, which Ollama reads keep_alive with: "1h30m", "90s", "0", "-1m".
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MAX_KEEP_ALIVE_CHARS = 40
# Longer is "forever" in effect, and past ~292 years Go's durations overflow: -1 says it.
MAX_KEEP_ALIVE_SECONDS = 365 * 24 * 3600


def _duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration or a bare number of seconds; None when it is neither."""
    body = text.removeprefix("-")
    if re.fullmatch(r"[0-9]+", body):
        return float(body)
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def validate_keep_alive(value: str) -> str:
    """A keep-alive as an admin may store it: a Go duration ("5m", "1h30m") or a whole
    number of seconds ("0" unloads at once, "-1" keeps the model loaded)."""
    text = value.strip()
    seconds = _duration_seconds(text) if len(text) <= MAX_KEEP_ALIVE_CHARS else None
    if seconds is not None and seconds <= MAX_KEEP_ALIVE_SECONDS:
        return text
    raise InvalidRequestError(
        f"{value[:MAX_KEEP_ALIVE_CHARS]!r} is not a keep-alive: use a duration up to a year "
        "such as 30s, 5m or 1h, a number of seconds, 0 to unload at once or -1 to keep the "
        "model loaded."
    )


SESSION_SETTINGS = frozenset(
    {
        "model", "system_prompt", "options", "scope", "preset", "keep_alive", "tools",
        "knowledge", "knowledge_passages", "member_notes", "persona",
        "threads",
    }
)  # fmt: skip
MAX_KNOWLEDGE_PASSAGES = 10


def checked_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """A session's settings changes, checked (None resets a setting); stored options are
    sent with every later question, so what Ollama would refuse then is refused now."""
    unknown = set(changes) - SESSION_SETTINGS
    if unknown:
        raise InvalidRequestError(f"Unknown session settings: {', '.join(sorted(unknown))}")
    changes = dict(changes)
    if changes.get("options"):
        bad = set(changes["options"]) - set(GenerationConfig.field_names())
        if bad:
            raise InvalidRequestError(f"Unknown generation options: {', '.join(sorted(bad))}")
        validate_options(changes["options"])
    if changes.get("preset") is not None:
        changes["preset"] = get_preset(changes["preset"]).name
    if changes.get("keep_alive") is not None:
        changes["keep_alive"] = validate_keep_alive(changes["keep_alive"])
    passages = changes.get("knowledge_passages")
    if passages is not None and (
        isinstance(passages, bool)
        or not isinstance(passages, int)
        or not 1 <= passages <= MAX_KNOWLEDGE_PASSAGES
    ):
        raise InvalidRequestError(
            f"knowledge_passages must be a whole number from 1 to {MAX_KNOWLEDGE_PASSAGES}."
        )
    tools = changes.get("tools")
    if tools is not None and (isinstance(tools, str) or not all(isinstance(t, str) for t in tools)):
        raise InvalidRequestError("tools must be a list of tool names.")
    return changes


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
    keep_alive: str | float | None  # None: the conversation's, else the manager's
    tools: list[Mapping[str, Any]] | None  # tool schemas the caller runs itself (seed 000)
    think: bool | str | None
    limits: GenerationLimits  # the manager's, with this call's overrides
    timeout_chosen: bool = False  # the caller set timeout_ms (a preset's timeout yields)
    preset: str | None = None
    toolset: ToolSet | None = None
    sources: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def request_messages(self) -> list[ChatMessage]:
        """The new messages as the model sees them: the question with its sources."""
        if self.sources is None:
            return self.new_messages
        messages = list(self.new_messages)
        for i in range(len(messages) - 1, -1, -1):
            if messages[i]["role"] == "user":
                asked = messages[i]
                messages[i] = {**asked, "content": with_sources(asked["content"], self.sources)}
                break
        return messages

    @property
    def has_images(self) -> bool:
        return any("images" in m for m in self.new_messages)

    def turn(
        self, result: OllamaQueryResult, exchange: Sequence[ChatMessage] = (), final: str = ""
    ) -> list[ChatMessage]:
        """The messages a completed query adds to its conversation: the question, the tool
        calls and results (``exchange``) and the answer's last text ``final`` (all of its
        text when there were no tool rounds)."""
        asked = [m for m in self.new_messages if m["role"] in ("user", "tool")][-1:]
        answer: ChatMessage = {
            "role": "assistant",
            "content": final if exchange else result.content,
        }
        if result.tool_calls and self.toolset is None:
            # The caller runs its tools itself (seed 000): the calls are its to answer. The
            # bot's own calls are in ``exchange`` with their results; one cut short by a
            # stop has none, and is left out so that the history stays well formed.
            answer["tool_calls"] = result.tool_calls
        return [*asked, *exchange, answer]


def build_query(args: QueryArgs, limits: GenerationLimits, *, restartable: bool) -> Query:
    """The checked ``Query`` of a call: the options object with the keyword options over it,
    the manager's limits for what the call leaves out. Raises InvalidRequestError."""
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
    preset = args.get("preset")
    if preset is not None:
        get_preset(preset)  # an unknown name is refused now
    new_messages = normalize_messages(messages or [])
    content = user_content(prompt, args.get("extra_context"), args.get("documents"))
    if content is not None:
        new_messages.append({"role": "user", "content": content})
    images = args.get("images")
    if images:
        _attach_images(new_messages, images)
    check_size(new_messages)
    return Query(
        new_messages=new_messages,
        config=config,
        session_id=args.get("session_id"),
        model=args.get("model"),
        system_prompt=args.get("system_prompt"),
        use_history=messages is None,
        format=None if format_ in (None, "text") else format_,
        keep_alive=args.get("keep_alive"),
        tools=None if tool_choice == "none" else args.get("tools"),
        think=args.get("think"),
        limits=replace(
            limits,
            timeout=(timeout_ms / 1000) if timeout_ms else limits.timeout,
            max_retries=limits.max_retries if max_retries is None else max_retries,
            retry_backoff=limits.retry_backoff if retry_backoff is None else retry_backoff,
            restartable=restartable,
        ),
        timeout_chosen=bool(timeout_ms),
        preset=preset,
        toolset=args.get("toolset") or None,
        sources=None if args.get("sources") is None else tuple(args.get("sources") or ()),
        notes=tuple(args.get("notes") or ()),
        metadata=dict(args.get("metadata") or {}),
    )


def _attach_images(messages: list[ChatMessage], images: Sequence[bytes]) -> None:
    """Put the images on the question (the last user message)."""
    if len(images) > MAX_IMAGES_PER_QUESTION:
        raise InvalidRequestError(
            f"At most {MAX_IMAGES_PER_QUESTION} images can go with one question."
        )
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise InvalidRequestError("Images need a question to go with.")
    users[-1]["images"] = [*users[-1].get("images", []), *images]
