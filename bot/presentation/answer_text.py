"""The words around an answer: its status lines (queued, retrying, thinking...) and its
footer (model, speed, persona, sources)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.errors import OllacordError
from bot.core.events import (
    FallbackEvent,
    HostSwitchEvent,
    QueryEvent,
    QueuedEvent,
    RetryEvent,
    ThinkingEvent,
    ToolRunEvent,
)
from bot.core.types import OllamaQueryResult

# The sources' part of the footer: ten labels of up to 200 characters would be a paragraph.
MAX_SOURCES_FOOTER_CHARS = 400


def neutral(error: OllacordError) -> str:
    return error.user_message


def status_line(event: QueryEvent) -> str | None:
    if isinstance(event, ToolRunEvent):
        return f"🔧 Using {', '.join(event.names)}…"
    if isinstance(event, QueuedEvent):
        if event.reason == "session":
            return f"⏳ Waiting for the previous answer in this conversation (#{event.position})…"
        if event.reason == "elsewhere":
            return "⏳ Waiting for an answer another bot process is writing in this conversation…"
        return f"⏳ Queued: position {event.position}…"
    if isinstance(event, ThinkingEvent):
        return "💭 Thinking…"
    if isinstance(event, RetryEvent):
        return f"🔁 {event.error} Retrying (attempt {event.attempt + 1})…"
    if isinstance(event, HostSwitchEvent):
        if event.withdrawn:
            return f"🔀 {event.error} Answering again on another server…"
        return f"🔀 {event.error} Asking another server…"
    if isinstance(event, FallbackEvent):
        return f"↪️ `{event.requested}` is not available; asking `{event.model}`…"
    return None


def footer(
    result: OllamaQueryResult,
    *,
    stopped: bool = False,
    tools_chosen: bool = True,
    persona: str | None = None,
) -> str:
    """The line under an answer. ``tools_chosen``: the channel's tools were an admin's
    choice, so a model that cannot call them is worth saying. ``persona``: the one that
    answered, named first ("🎭 pirate · qwen3 · ...")."""
    parts = [f"🎭 {persona}", result.model] if persona else [result.model]
    if result.eval_count:
        parts.append(f"{result.eval_count} tokens")
    if result.tokens_per_second:
        parts.append(f"{result.tokens_per_second:.1f} tok/s")
    if result.vision_from:
        parts.append(f"sees images for {result.vision_from}")
    if result.fallback_from:
        parts.append(f"fallback for {result.fallback_from}")
    if result.tools_used:
        parts.append("🔧 " + ", ".join(dict.fromkeys(result.tools_used)))
    elif result.tools_unavailable and tools_chosen:
        parts.append("tools unavailable for this model")
    elif result.tools_without_room and tools_chosen:
        parts.append("tools left out: the context window is too small")
    if stopped:
        parts.append("stopped")
    elif result.done_reason == "length":
        parts.append("cut at the length limit")
    return " · ".join(parts)


def sources_note(labels: Sequence[str]) -> str | None:
    """ "📚 [1] handbook.pdf p. 3 · [2] faq.md" for the footer, cut to a bounded length."""
    if not labels:
        return None
    note = "📚"
    for number, label in enumerate(labels, 1):
        part = f"{' ·' if number > 1 else ''} [{number}] {label}"
        if len(note) + len(part) > MAX_SOURCES_FOOTER_CHARS:
            return note + " · …"
        note += part
    return note
