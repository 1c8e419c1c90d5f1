"""One generation against Ollama: timeouts, retries with backoff and jitter, model fallback.

It gets a complete ``GenerationRequest`` and streams the answer's text; it knows nothing of
conversations, the queue or storage (``bot.core.execution`` runs it in the query's turn).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bot.core.errors import (
    ModelNotFoundError,
    OllamaConnectionLostError,
    OllamaError,
    OllamaTimeoutError,
)
from bot.core.events import (
    EventCallback,
    FallbackEvent,
    HostSwitchEvent,
    RetryEvent,
    ThinkingEvent,
    ToolCallEvent,
    emit,
)
from bot.core.history import ChatMessage
from bot.core.ollama_client import OllamaClient, final_stats, normalize_model_name, tool_calls
from bot.core.types import OllamaQueryResult
from bot.core.watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
# Full jitter would sometimes retry at once; keeping half the delay fixed spreads retries of
# many clients without hammering a server that just fell over.
JITTER_RANGE = (0.5, 1.5)


@dataclass(frozen=True, slots=True)
class GenerationLimits:
    """How long a generation may take, and how it is tried again. No defaults here: they
    come from the settings, through the manager (a call may override some)."""

    timeout: float  # the whole answer
    first_token_timeout: float  # model loading included
    idle_timeout: float  # between two chunks
    max_retries: int
    retry_backoff: float
    # True when nothing reaches the caller before the end, so a failure midway can restart.
    restartable: bool = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything one generation needs, complete before it starts (``plan_request`` builds
    it once the query's turn has come)."""

    models: tuple[str, ...]  # the model to ask, then the fallbacks to try while it is missing
    messages: list[ChatMessage]
    options: dict[str, Any]
    format: str | dict[str, Any] | None
    keep_alive: str | float | None
    tools: list[Mapping[str, Any]] | None
    think: bool | str | None
    limits: GenerationLimits

    @property
    def model(self) -> str:
        return self.models[0]

    def continued(
        self, messages: Sequence[ChatMessage], *, tools: list[Mapping[str, Any]] | None
    ) -> GenerationRequest:
        """The next round's request: the model's tool calls and their results added."""
        return replace(self, messages=[*self.messages, *messages], tools=tools)


@dataclass(slots=True)
class GenerationProgress:
    """What a generation has produced so far; ``done`` once the model's final chunk arrived
    (the stats are in then, though the connection may still be winding down)."""

    parts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    done: bool = False
    done_reason: str | None = None
    stats: dict[str, int | None] = field(default_factory=dict)
    fallback_from: str | None = None
    attempts: int = 0
    retries: int = 0
    moves: int = 0  # to another host, after a failure there before the first token
    first_token_seconds: float | None = None

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def result(self, requested: str, metadata: Mapping[str, Any]) -> OllamaQueryResult:
        """The answer as the core reports it: text, model, figures, how it was obtained."""
        stats = self.stats
        return OllamaQueryResult(
            content=self.content,
            model=self.model or requested,
            done=True,
            total_duration=stats.get("total_duration"),
            load_duration=stats.get("load_duration"),
            prompt_eval_count=stats.get("prompt_eval_count"),
            prompt_eval_duration=stats.get("prompt_eval_duration"),
            eval_count=stats.get("eval_count"),
            eval_duration=stats.get("eval_duration"),
            metadata={**metadata, "attempts": self.attempts, "retries": self.retries},
            done_reason=self.done_reason,
            tool_calls=list(self.tool_calls),
            fallback_from=self.fallback_from,
            thinking="".join(self.thinking),
        )

    def restart(self) -> None:
        self.parts.clear()
        self.thinking.clear()
        self.tool_calls.clear()
        self.stats = {}
        self.first_token_seconds = None


class GenerationTarget(Protocol):
    """Where a generation asks: a host's client (``bot.core.hosts.pool.Lease``), told when
    the first token came and when an attempt failed, which may move it to another host."""

    @property
    def client(self) -> OllamaClient: ...

    def started(self, model: str) -> None: ...

    async def failed(self, exc: OllamaError, model: str, delivered: bool) -> bool: ...


def backoff_delay(attempt: int, base: float) -> float:
    """Delay before retry number ``attempt`` (0-based): base * 2^attempt, jittered, capped."""
    return min(MAX_BACKOFF_SECONDS, base * 2**attempt) * random.uniform(*JITTER_RANGE)


def model_chain(model: str, fallbacks: Sequence[str]) -> tuple[str, ...]:
    """``model``, then each fallback not already in the chain (``llama3.2`` is ``:latest``)."""
    chain = [model]
    seen = {normalize_model_name(model)}
    for name in fallbacks:
        if normalize_model_name(name) not in seen:
            seen.add(normalize_model_name(name))
            chain.append(name)
    return tuple(chain)


async def generate(
    target: GenerationTarget,
    request: GenerationRequest,
    progress: GenerationProgress,
    on_event: EventCallback | None = None,
) -> AsyncIterator[str]:
    """Yield the answer's text chunks; raise an OllamaError carrying any partial text.

    The chunk that completes the answer is always yielded, empty if the model's final chunk
    had no text, with ``progress.done`` set: a consumer can show the answer complete at once,
    while the rest of the response body is still being read.
    """
    chain = request.models
    limits = request.limits
    index = 0
    started = time.monotonic()
    done = False
    while True:
        model = chain[index]
        client = target.client
        progress.attempts += 1
        try:
            # One attempt, inlined rather than delegated to a helper generator: every
            # generator layer costs about as much per token as all of our own work.
            with client.translating(model):
                stream = await client.open_chat(
                    model=model,
                    messages=request.messages,
                    options=request.options,
                    format=request.format,
                    keep_alive=request.keep_alive,
                    tools=request.tools,
                    think=request.think,
                )
                overall = asyncio.get_running_loop().time() + limits.timeout
                watchdog = Watchdog(limits.first_token_timeout, not_after=overall)
                first, done = True, False
                parts = progress.parts
                try:
                    async for part in stream:
                        watchdog.waiting = False
                        if first:
                            first = False
                            watchdog.set_limit(limits.idle_timeout)
                            progress.first_token_seconds = time.monotonic() - started
                            target.started(model)
                        message = part.message
                        if part.done or message.thinking or message.tool_calls:
                            done = await _special(part, model, progress, on_event)
                        content = message.content
                        if content:
                            parts.append(content)
                            yield content
                        elif done:
                            yield ""  # the end, to be shown before the body winds down
                        # After the final chunk, read on to the end of the body so httpx
                        # returns the connection to its pool (closing it midway drops it).
                        watchdog.ticks += 1
                        watchdog.waiting = True
                    if not done:
                        raise OllamaConnectionLostError()
                except asyncio.CancelledError:
                    if not watchdog.check_cancelled():
                        raise
                    if not done:
                        # The cancellation was our own watchdog's: it is no cause worth keeping.
                        raise _timeout_error(limits, first, watchdog.overall_expired) from None
                finally:
                    watchdog.close()
                    await stream.aclose()
            progress.model = progress.model or model
            return
        except OllamaError as exc:
            if done:  # the answer was complete: only winding down the connection failed
                log.debug("ignored after the final chunk: %s", exc.user_message)
                progress.model = progress.model or model
                return
            if isinstance(exc, OllamaConnectionLostError) and not progress.parts:
                exc.user_message = OllamaConnectionLostError.BEFORE_ANSWER
            delivered = bool(progress.parts) and not limits.restartable
            if await target.failed(exc, model, delivered):
                # Another host asks again at once. Text already shown is withdrawn (the
                # event says how much), so the reply never shows two answers run together.
                withdrawn = len(progress.content) if delivered else 0
                progress.restart()
                progress.moves += 1
                await emit(on_event, HostSwitchEvent(exc.user_message, withdrawn))
                continue
            if not isinstance(exc, ModelNotFoundError):
                await _retry_or_raise(exc, request, progress, model, on_event)
                continue
            if progress.parts or index + 1 >= len(chain):
                exc.partial_content = progress.content
                raise
            index += 1
            progress.fallback_from = request.model
            log.warning("model %s not found; falling back to %s", model, chain[index])
            await emit(on_event, FallbackEvent(requested=request.model, model=chain[index]))


async def _retry_or_raise(
    exc: OllamaError,
    request: GenerationRequest,
    progress: GenerationProgress,
    model: str,
    on_event: EventCallback | None,
) -> None:
    """Wait before the next attempt, or raise ``exc`` (with the partial text) if none is due."""
    limits = request.limits
    delivered = bool(progress.parts) and not limits.restartable
    if not exc.retryable or delivered or progress.retries >= limits.max_retries:
        exc.partial_content = progress.content
        raise exc
    delay = backoff_delay(progress.retries, limits.retry_backoff)
    progress.retries += 1
    progress.restart()
    log.info(
        "retry %d/%d for %s in %.2fs after: %s",
        progress.retries,
        limits.max_retries,
        model,
        delay,
        exc.user_message,
    )
    await emit(on_event, RetryEvent(progress.retries, delay, exc.user_message))
    await asyncio.sleep(delay)


async def _special(
    part: Any, model: str, progress: GenerationProgress, on_event: EventCallback | None
) -> bool:
    """The rare chunks: thinking, tool calls, the final one (True) with the stats."""
    message = part.message
    if message.thinking:
        progress.thinking.append(message.thinking)
        await emit(on_event, ThinkingEvent(message.thinking))
    if message.tool_calls:
        calls = tool_calls(message)
        progress.tool_calls.extend(calls)
        await emit(on_event, ToolCallEvent(tuple(calls)))
    if not part.done:
        return False
    progress.model = part.model or model
    progress.done = True
    progress.done_reason = part.done_reason
    progress.stats = final_stats(part)
    return True


def _timeout_error(limits: GenerationLimits, first: bool, overall: bool) -> OllamaTimeoutError:
    if overall:
        return OllamaTimeoutError(f"The answer took longer than {limits.timeout:g} s.")
    if first:
        return OllamaTimeoutError(
            f"The model did not start answering within {limits.first_token_timeout:g} s."
        )
    return OllamaTimeoutError(f"The model stopped sending for {limits.idle_timeout:g} s.")
