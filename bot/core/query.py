"""Query plumbing: argument validation, the streaming handle and the final result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import InvalidRequestError
from bot.core.generation import GenerationOutcome, GenerationRequest
from bot.core.history import ChatMessage
from bot.core.types import OllamaQueryResult

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


@dataclass(slots=True)
class QueryPlan:
    """A validated query waiting for its turn; session data is read only once it runs."""

    session_id: str | None
    model: str | None
    system_prompt: str | None
    new_messages: list[ChatMessage]
    use_history: bool
    overrides: dict[str, Any]
    request: GenerationRequest
    metadata: dict[str, Any] = field(default_factory=dict)

    def turn(self, result: OllamaQueryResult) -> list[ChatMessage]:
        """The messages a completed query adds to its session."""
        asked = [m for m in self.new_messages if m["role"] in ("user", "tool")][-1:]
        answer: ChatMessage = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            answer["tool_calls"] = result.tool_calls
        return [*asked, answer]


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
    if max_retries is not None and not 0 <= max_retries <= 10:
        raise InvalidRequestError("max_retries must be between 0 and 10.")
    if retry_backoff is not None and retry_backoff < 0:
        raise InvalidRequestError("retry_backoff must not be negative.")
    if tool_choice not in TOOL_CHOICES:
        raise InvalidRequestError(f"tool_choice must be one of {TOOL_CHOICES[1:]}.")


def build_result(
    outcome: GenerationOutcome, requested: str, metadata: dict[str, Any]
) -> OllamaQueryResult:
    stats = outcome.stats
    return OllamaQueryResult(
        content=outcome.content,
        model=outcome.model or requested,
        done=True,
        total_duration=stats.get("total_duration"),
        load_duration=stats.get("load_duration"),
        prompt_eval_count=stats.get("prompt_eval_count"),
        prompt_eval_duration=stats.get("prompt_eval_duration"),
        eval_count=stats.get("eval_count"),
        eval_duration=stats.get("eval_duration"),
        metadata={**metadata, "attempts": outcome.attempts, "retries": outcome.retries},
        done_reason=outcome.done_reason,
        tool_calls=list(outcome.tool_calls),
        fallback_from=outcome.fallback_from,
        thinking="".join(outcome.thinking),
    )


class QueryStream(AsyncIterator[str]):
    """The text chunks of a streamed answer; ``result`` is set once it is exhausted.

    Consume it fully, or ``aclose()`` it (``async with`` does) to cancel the generation.
    """

    def __init__(self) -> None:
        self._source: AsyncIterator[str] | None = None
        self.result: OllamaQueryResult | None = None
        self.stop_requested = False
        # Called with the result as soon as the answer is complete, before the turn is
        # stored: a reply can show its final form without waiting for the database.
        self.on_result: Callable[[OllamaQueryResult], None] | None = None

    def request_stop(self) -> None:
        """Mark the coming cancellation as the user's choice: what was said is then kept."""
        self.stop_requested = True

    def bind(self, source: AsyncIterator[str]) -> None:
        self._source = source

    def set_result(self, result: OllamaQueryResult) -> None:
        self.result = result
        if self.on_result is not None:
            self.on_result(result)

    def __aiter__(self) -> AsyncIterator[str]:
        # Hand out the generator itself: `async for` then skips a Python-level hop per chunk.
        assert self._source is not None
        return self._source

    async def __anext__(self) -> str:
        assert self._source is not None
        return await anext(self._source)

    async def aclose(self) -> None:
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> QueryStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
