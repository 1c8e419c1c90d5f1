"""Progress events a query reports through its ``on_event`` callback."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """Waiting for a turn; ``position`` 1 means next. ``reason``: "session" (an earlier
    question in this conversation), "elsewhere" (another process answering in it) or
    "capacity"."""

    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class StartedEvent:
    model: str


@dataclass(frozen=True, slots=True)
class ThinkingEvent:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    calls: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ToolRunEvent:
    """The tools a round runs, now (their names, in the model's order)."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RetryEvent:
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class HostSwitchEvent:
    """The Ollama host asked failed (``error`` says how): another host answers instead, at
    once. ``withdrawn``: characters of this round's text already streamed, which the new
    answer replaces (the host went away mid-answer); 0 before the first token."""

    error: str
    withdrawn: int = 0


@dataclass(frozen=True, slots=True)
class FallbackEvent:
    requested: str
    model: str


QueryEvent = (
    QueuedEvent
    | StartedEvent
    | ThinkingEvent
    | ToolCallEvent
    | ToolRunEvent
    | RetryEvent
    | HostSwitchEvent
    | FallbackEvent
)
EventCallback = Callable[[QueryEvent], Awaitable[None] | None]


async def emit(callback: EventCallback | None, event: QueryEvent) -> None:
    """Deliver an event; a failing callback is logged, never allowed to break the query."""
    if callback is None:
        return
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("on_event callback failed for %r", event)
