"""One generation against Ollama: timeouts, retries with backoff and jitter, model fallback."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import (
    ModelNotFoundError,
    OllamaConnectionLostError,
    OllamaError,
    OllamaTimeoutError,
)
from bot.core.events import (
    EventCallback,
    FallbackEvent,
    RetryEvent,
    ThinkingEvent,
    ToolCallEvent,
    emit,
)
from bot.core.history import ChatMessage
from bot.core.ollama_client import OllamaClient, final_stats, normalize_model_name, tool_calls
from bot.core.watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
# Full jitter would sometimes retry at once; keeping half the delay fixed spreads retries of
# many clients without hammering a server that just fell over.
JITTER_RANGE = (0.5, 1.5)


@dataclass(slots=True)
class GenerationRequest:
    model: str
    messages: list[ChatMessage]
    options: dict[str, Any]
    fallbacks: tuple[str, ...] = ()
    format: str | dict[str, Any] | None = None
    keep_alive: str | float | None = None
    tools: list[Mapping[str, Any]] | None = None
    think: bool | str | None = None
    timeout: float = 300.0
    first_token_timeout: float = 120.0
    idle_timeout: float = 60.0
    max_retries: int = 3
    retry_backoff: float = 1.0
    # True when nothing reaches the caller before the end, so a failure midway can restart.
    restartable: bool = False


@dataclass(slots=True)
class GenerationOutcome:
    """Filled in while the generation runs; complete once the iterator is exhausted."""

    parts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    done_reason: str | None = None
    stats: dict[str, int | None] = field(default_factory=dict)
    fallback_from: str | None = None
    attempts: int = 0
    retries: int = 0
    first_token_seconds: float | None = None
    # Called once the final chunk is read, before the rest of the body is drained: the
    # answer can be shown complete without waiting for the connection to wind down.
    on_complete: Callable[[], None] | None = None

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def restart(self) -> None:
        self.parts.clear()
        self.thinking.clear()
        self.tool_calls.clear()
        self.stats = {}
        self.first_token_seconds = None


def backoff_delay(attempt: int, base: float) -> float:
    """Delay before retry number ``attempt`` (0-based): base * 2^attempt, jittered, capped."""
    return min(MAX_BACKOFF_SECONDS, base * 2**attempt) * random.uniform(*JITTER_RANGE)


def model_chain(model: str, fallbacks: tuple[str, ...]) -> list[str]:
    chain = [model]
    seen = {normalize_model_name(model)}
    for name in fallbacks:
        if normalize_model_name(name) not in seen:
            seen.add(normalize_model_name(name))
            chain.append(name)
    return chain


async def generate(
    client: OllamaClient,
    session: Callable[[], AbstractAsyncContextManager[GenerationRequest]],
    outcome: GenerationOutcome,
    on_event: EventCallback | None = None,
) -> AsyncIterator[str]:
    """Yield the answer's text chunks; raise an OllamaError carrying any partial text.

    ``session()`` opens the query's turn (its place in the queue, its context) and gives the
    request; it is closed after the last chunk, normally or by the exception that ended the
    stream. It wraps this generator instead of being another one around it: a generator
    layer costs about as much per token as all of our own per-token work.
    """
    async with session() as request:
        chain = model_chain(request.model, request.fallbacks)
        index = 0
        started = time.monotonic()
        done = False
        while True:
            model = chain[index]
            outcome.attempts += 1
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
                    overall = asyncio.get_running_loop().time() + request.timeout
                    watchdog = Watchdog(request.first_token_timeout, not_after=overall)
                    first, done = True, False
                    parts = outcome.parts
                    try:
                        async for part in stream:
                            watchdog.waiting = False
                            if first:
                                first = False
                                watchdog.set_limit(request.idle_timeout)
                                outcome.first_token_seconds = time.monotonic() - started
                            message = part.message
                            if part.done or message.thinking or message.tool_calls:
                                done = await _special(part, model, outcome, on_event)
                            content = message.content
                            if content:
                                parts.append(content)
                                yield content
                            if done and outcome.on_complete is not None:
                                outcome.on_complete()
                                outcome.on_complete = None
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
                            raise _timeout_error(request, first, watchdog.overall_expired) from None
                    finally:
                        watchdog.close()
                        await stream.aclose()
                outcome.model = outcome.model or model
                return
            except OllamaError as exc:
                if done:  # the answer was complete: only winding down the connection failed
                    log.debug("ignored after the final chunk: %s", exc.user_message)
                    outcome.model = outcome.model or model
                    return
                if not isinstance(exc, ModelNotFoundError):
                    await _retry_or_raise(exc, request, outcome, model, on_event)
                    continue
                if outcome.parts or index + 1 >= len(chain):
                    exc.partial_content = outcome.content
                    raise
                index += 1
                outcome.fallback_from = request.model
                log.warning("model %s not found; falling back to %s", model, chain[index])
                await emit(on_event, FallbackEvent(requested=request.model, model=chain[index]))


async def _retry_or_raise(
    exc: OllamaError,
    request: GenerationRequest,
    outcome: GenerationOutcome,
    model: str,
    on_event: EventCallback | None,
) -> None:
    """Wait before the next attempt, or raise ``exc`` (with the partial text) if none is due."""
    delivered = bool(outcome.parts) and not request.restartable
    if not exc.retryable or delivered or outcome.retries >= request.max_retries:
        exc.partial_content = outcome.content
        raise exc
    delay = backoff_delay(outcome.retries, request.retry_backoff)
    outcome.retries += 1
    outcome.restart()
    log.info(
        "retry %d/%d for %s in %.2fs after: %s",
        outcome.retries,
        request.max_retries,
        model,
        delay,
        exc.user_message,
    )
    await emit(on_event, RetryEvent(outcome.retries, delay, exc.user_message))
    await asyncio.sleep(delay)


async def _special(
    part: Any, model: str, outcome: GenerationOutcome, on_event: EventCallback | None
) -> bool:
    """The rare chunks: thinking, tool calls, the final one (True) with the stats."""
    message = part.message
    if message.thinking:
        outcome.thinking.append(message.thinking)
        await emit(on_event, ThinkingEvent(message.thinking))
    if message.tool_calls:
        calls = tool_calls(message)
        outcome.tool_calls.extend(calls)
        await emit(on_event, ToolCallEvent(tuple(calls)))
    if not part.done:
        return False
    outcome.model = part.model or model
    outcome.done_reason = part.done_reason
    outcome.stats = final_stats(part)
    return True


def _timeout_error(request: GenerationRequest, first: bool, overall: bool) -> OllamaTimeoutError:
    if overall:
        return OllamaTimeoutError(f"The answer took longer than {request.timeout:g} s.")
    if first:
        return OllamaTimeoutError(
            f"The model did not start answering within {request.first_token_timeout:g} s."
        )
    return OllamaTimeoutError(f"The model stopped sending for {request.idle_timeout:g} s.")
