"""The built-in tools, safe by construction: none runs code, none reads beyond the question's
own conversation and channel, and each bounds what it accepts and what it returns.

The calculator is a parser of our own (no eval, no ast): its input length, its nesting and
the size of every intermediate number are bounded, so no expression can hang the event loop
or fill the memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.errors import OllacordError
from bot.core.history import ChatMessage
from bot.core.tools.calculator import MAX_EXPRESSION_CHARS, evaluate, format_number
from bot.core.tools.registry import Tool, ToolContext, ToolError

log = logging.getLogger(__name__)

SearchMessages = Callable[[str, str, int], Awaitable[list[ChatMessage]]]
# (session, query, k) -> (message, score) pairs, best first; None where the conversation has
# no vectors yet. bot.core.memory's Memory.search.
SearchByMeaning = Callable[[str, str, int], Awaitable[Sequence[tuple[ChatMessage, float]] | None]]

MAX_TIMEZONE_CHARS = 64
MAX_QUERY_CHARS = 200
DEFAULT_SEARCH_RESULTS, MAX_SEARCH_RESULTS = 5, 10
EXCERPT_CHARS = 400
DEFAULT_CHANNEL_MESSAGES, MAX_CHANNEL_MESSAGES = 20, 50
MESSAGE_CHARS = 300
MAX_AUTHOR_CHARS = 64
# Under the registry's bound on a result, so whole lines are dropped rather than cut.
MAX_CHANNEL_CHARS = 6000


def _text_argument(arguments: Mapping[str, Any], name: str, max_chars: int) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"give {name} as a non-empty string")
    if len(value) > max_chars:
        raise ToolError(f"{name} is too long (at most {max_chars} characters)")
    return value.strip()


def _int_argument(
    arguments: Mapping[str, Any], name: str, default: int, low: int, high: int
) -> int:
    value = arguments.get(name)
    if value is None:
        return default
    if isinstance(value, str):  # some models send numbers as strings
        with contextlib.suppress(ValueError):
            value = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError(f"{name} must be a whole number from {low} to {high}")
    # Out of range is clamped rather than refused: the model's intent is clear.
    return max(low, min(high, value))


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _excerpt(text: str, query: str, width: int = EXCERPT_CHARS) -> str:
    """Up to ``width`` characters of ``text`` around where ``query`` occurs in it."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    found = text.lower().find(" ".join(query.split()).lower())
    start = max(0, min(found - width // 3, len(text) - width)) if found > 0 else 0
    end = start + width
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def current_time_tool(clock: Callable[[], datetime] = _utc_now) -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        name = arguments.get("timezone") or "UTC"
        if not isinstance(name, str) or len(name) > MAX_TIMEZONE_CHARS:
            raise ToolError("timezone must be an IANA time zone name such as 'Europe/Paris'")
        name = "UTC" if name.strip().upper() == "UTC" else name.strip()
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe")
            raise ToolError(
                f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris', "
                "'America/New_York' or 'UTC'"
            ) from None
        now = clock().astimezone(zone)
        iso = now.isoformat(timespec="seconds")
        return (
            f"date: {now:%Y-%m-%d} ({now:%A})\ntime: {now:%H:%M:%S}\n"
            f"time zone: {zone.key} ({now.tzname()}, UTC{iso[19:]})\niso: {iso}"
        )

    return Tool(
        name="get_current_time",
        description="Get the current date, weekday and time, in UTC or in a given time zone. "
        "Use it whenever the answer depends on today's date or the current time.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "An IANA time zone name, e.g. 'Europe/Paris', "
                    "'America/New_York', 'Asia/Tokyo'. Default: UTC.",
                }
            },
        },
        handler=handler,
        default_on=True,
    )


def calculator_tool() -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        expression = _text_argument(arguments, "expression", MAX_EXPRESSION_CHARS)
        return f"{expression} = {format_number(evaluate(expression))}"

    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression and return its exact value; use it for "
        "any calculation rather than computing in your head. Supports numbers (1.5, 2e-3), "
        "+ - * / // (floor division) % ** (power), parentheses, the constants pi and e, and "
        "the functions sqrt, abs, round(x[, digits]), min, max, log(x[, base]) (natural by "
        "default), sin, cos, tan (radians).",
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "The expression, e.g. '(3.5 + 2) * 4**2 / sqrt(2)'; "
                    f"at most {MAX_EXPRESSION_CHARS} characters.",
                }
            },
            "required": ["expression"],
        },
        handler=handler,
        default_on=True,
    )


def search_conversation_tool(
    search: SearchMessages, by_meaning: SearchByMeaning | None = None
) -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        if context.session_id is None:
            raise ToolError("no conversation here: this question is not part of a stored "
                            "conversation, so there is nothing to search")  # fmt: skip
        query = _text_argument(arguments, "query", MAX_QUERY_CHARS)
        limit = _int_argument(arguments, "limit", DEFAULT_SEARCH_RESULTS, 1, MAX_SEARCH_RESULTS)
        if by_meaning is not None:
            meant = await _search_by_meaning(by_meaning, context.session_id, query, limit)
            if meant:
                lines = [
                    f"{m.get('role', 'unknown')} ({score:.2f}): "
                    f"{_excerpt(m.get('content', ''), query)}"
                    for m, score in meant[:limit]
                ]
                return (
                    f"Messages of this conversation about {query!r}, closest in meaning "
                    "first (with their similarity, 0 to 1):\n" + "\n".join(lines)
                )
        # No vectors for this conversation yet, none close enough, or the embedding model
        # unavailable: the words themselves.
        found = (await search(context.session_id, query, limit))[:limit]
        if not found:
            return f"No message of this conversation contains {query!r}."
        lines = [
            f"{m.get('role', 'unknown')}: {_excerpt(m.get('content', ''), query)}" for m in found
        ]
        return f"Messages of this conversation containing {query!r}:\n" + "\n".join(lines)

    return Tool(
        name="search_conversation",
        description="Search the earlier messages of this conversation, including those too "
        "old to be in your context, by meaning (or for the exact words when that finds "
        "nothing). Returns each matching message with who wrote it (user or assistant). "
        "Use it when the user refers to something said earlier that you cannot see, e.g. "
        "'what did we decide about the release?'.",
        parameters={
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to look for: a subject, a question or a phrase.",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_SEARCH_RESULTS,
                    "description": f"How many messages at most (default {DEFAULT_SEARCH_RESULTS}).",
                },
            },
            "required": ["query"],
        },
        handler=handler,
        # Default on: it reads only the conversation the question belongs to, which its
        # participants already share and which the model is partly shown anyway.
        default_on=True,
    )


async def _search_by_meaning(
    by_meaning: SearchByMeaning, session_id: str, query: str, limit: int
) -> Sequence[tuple[ChatMessage, float]] | None:
    """The search by meaning, or None when it cannot help now (the words are searched)."""
    try:
        return await by_meaning(session_id, query, limit)
    except OllacordError as exc:  # the embedding model missing, Ollama down, the database
        log.info("search by meaning unavailable, searching words: %s", exc.user_message)
        return None


def read_channel_tool() -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        if context.channel is None:
            raise ToolError("the bot cannot read this channel's messages (it needs the "
                            "Message Content intent)")  # fmt: skip
        limit = _int_argument(arguments, "limit", DEFAULT_CHANNEL_MESSAGES, 1, MAX_CHANNEL_MESSAGES)
        messages = (await context.channel.recent_messages(limit))[-limit:]
        if not messages:
            return "There are no messages to read in this channel."
        lines = [
            f"{_one_line(m.author, MAX_AUTHOR_CHARS) or 'someone'}: "
            f"{_one_line(m.content, MESSAGE_CHARS) or '(no text)'}"
            for m in messages
        ]
        # The newest messages matter most: the oldest are left out when they do not fit.
        kept: list[str] = []
        used = 0
        for line in reversed(lines):
            used += len(line) + 1
            if used > MAX_CHANNEL_CHARS:
                break
            kept.append(line)
        kept.reverse()
        left_out = len(lines) - len(kept)
        more = f" ({left_out} older ones left out)" if left_out else ""
        return f"The last {len(kept)} messages of this channel, oldest first{more}:\n" + (
            "\n".join(kept)
        )

    return Tool(
        name="read_channel",
        description="Read the most recent messages posted in this channel by its members, "
        "oldest first, as 'author: message' lines. Use it when asked what is being "
        "discussed here, to summarize the channel, or to answer about a recent message.",
        parameters={
            "type": "object",
            "properties": {
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_CHANNEL_MESSAGES,
                    "description": f"How many messages (default {DEFAULT_CHANNEL_MESSAGES}).",
                }
            },
        },
        handler=handler,
        # Off by default: it shows the model members' messages that were not written to
        # the bot, so an admin opts in per channel.
        default_on=False,
    )


async def no_conversations(session_id: str, text: str, limit: int) -> list[ChatMessage]:
    """The search of a bot without a database."""
    raise ToolError("this bot keeps no conversations to search")


def builtin_tools(search: SearchMessages, by_meaning: SearchByMeaning | None = None) -> list[Tool]:
    """Every built-in tool; ``search`` is the store's ``search_messages``, ``by_meaning``
    the turn index's search (``Memory.search``) where there is one."""
    return [
        current_time_tool(),
        calculator_tool(),
        search_conversation_tool(search, by_meaning),
        read_channel_tool(),
    ]
