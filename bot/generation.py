"""One generation against Ollama: timeouts, retries with backoff and jitter, model fallback."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import (
    ModelNotFoundError,
    OllamaConnectionLostError,
    OllamaError,
    OllamaTimeoutError,
)
from bot.events import EventCallback, FallbackEvent, RetryEvent, ThinkingEvent, ToolCallEvent, emit
from bot.history import ChatMessage
from bot.ollama_client import OllamaClient, normalize_model_name
from bot.watchdog import Watchdog

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
    request: GenerationRequest,
    outcome: GenerationOutcome,
    on_event: EventCallback | None = None,
) -> AsyncIterator[str]:
    """Yield the answer's text chunks; raise an OllamaError carrying any partial text."""
    chain = model_chain(request.model, request.fallbacks)
    index = 0
    started = time.monotonic()
    while True:
        model = chain[index]
        outcome.attempts += 1
        try:
            async for text in _attempt(client, request, model, outcome, on_event, started):
                yield text
            outcome.model = outcome.model or model
            return
        except ModelNotFoundError as exc:
            if outcome.parts or index + 1 >= len(chain):
                exc.partial_content = outcome.content
                raise
            index += 1
            outcome.fallback_from = request.model
            log.warning("model %s not found; falling back to %s", model, chain[index])
            await emit(on_event, FallbackEvent(requested=request.model, model=chain[index]))
        except OllamaError as exc:
            delivered = bool(outcome.parts) and not request.restartable
            if not exc.retryable or delivered or outcome.retries >= request.max_retries:
                exc.partial_content = outcome.content
                raise
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


async def _attempt(
    client: OllamaClient,
    request: GenerationRequest,
    model: str,
    outcome: GenerationOutcome,
    on_event: EventCallback | None,
    started: float,
) -> AsyncIterator[str]:
    stream = client.chat_stream(
        model=model,
        messages=request.messages,
        options=request.options,
        format=request.format,
        keep_alive=request.keep_alive,
        tools=request.tools,
        think=request.think,
    )
    watchdog = Watchdog()
    overall = asyncio.get_running_loop().time() + request.timeout
    first = True
    try:
        while True:
            limit = request.first_token_timeout if first else request.idle_timeout
            watchdog.expect(limit, not_after=overall)
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                raise OllamaConnectionLostError() from None
            except asyncio.CancelledError:
                if watchdog.check_cancelled():
                    raise _timeout_error(request, first, watchdog.deadline >= overall) from None
                raise
            watchdog.pause()
            first = False
            if type(chunk) is str:
                if outcome.first_token_seconds is None:
                    outcome.first_token_seconds = time.monotonic() - started
                outcome.parts.append(chunk)
                yield chunk
                continue
            if chunk.thinking:
                outcome.thinking.append(chunk.thinking)
                await emit(on_event, ThinkingEvent(chunk.thinking))
            if chunk.tool_calls:
                outcome.tool_calls.extend(chunk.tool_calls)
                await emit(on_event, ToolCallEvent(tuple(chunk.tool_calls)))
            if chunk.content:
                if outcome.first_token_seconds is None:
                    outcome.first_token_seconds = time.monotonic() - started
                outcome.parts.append(chunk.content)
                yield chunk.content
            if chunk.done:
                outcome.model = chunk.model or model
                outcome.done_reason = chunk.done_reason
                outcome.stats = chunk.stats
                # Read to the end of the body so httpx returns the connection to its pool;
                # closing a response midway drops the connection instead.
                watchdog.expect(request.idle_timeout, not_after=overall)
                try:
                    async for _ in stream:
                        pass
                except asyncio.CancelledError:
                    if not watchdog.check_cancelled():
                        raise
                return
    finally:
        watchdog.close()
        await stream.aclose()


def _timeout_error(request: GenerationRequest, first: bool, overall: bool) -> OllamaTimeoutError:
    if overall:
        return OllamaTimeoutError(f"The answer took longer than {request.timeout:g} s.")
    if first:
        return OllamaTimeoutError(
            f"The model did not start answering within {request.first_token_timeout:g} s."
        )
    return OllamaTimeoutError(f"The model stopped sending for {request.idle_timeout:g} s.")
