"""Conversation history and the rules that fit it into a model's context window."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from bot.core.config import DEFAULTS

Role = Literal["system", "user", "assistant", "tool"]

# A characters-per-token ratio that errs on the safe side: English averages about four
# characters per token, code and most other languages fewer, and an underestimate makes the
# server drop the start of the conversation. Queries learn each model's real ratio
# (bot.core.context_window.TokenEstimator); this is the guess before that.
CHARS_PER_TOKEN = 3
# Chat templates wrap each message in role markers; count them so many short turns don't
# silently blow the budget.
MESSAGE_OVERHEAD_TOKENS = 4


class ChatMessage(TypedDict, total=False):
    role: Role
    content: str
    tool_calls: list[dict[str, Any]]
    tool_name: str
    # Image files: bytes from the bot (the ollama client encodes them on the wire, which
    # costs a fraction of validating a base64 string it is given: ~8 ms per photo per
    # request); callers of the seed API may give base64 strings.
    images: list[bytes | str]


def estimate_tokens(text: str) -> int:
    """Approximate token count of ``text`` (never zero for non-empty text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_tokens(message: ChatMessage) -> int:
    return estimate_tokens(message.get("content", "")) + MESSAGE_OVERHEAD_TOKENS


def fit_window(
    messages: Sequence[ChatMessage],
    *,
    max_messages: int | None,
    max_tokens: int | None,
    reserved_tokens: int = 0,
    keep_newest: bool = True,
    cost: Callable[[ChatMessage], int] = message_tokens,
) -> list[ChatMessage]:
    """Return the most recent suffix of ``messages`` that fits both limits.

    With ``keep_newest`` the newest message is kept even when it alone is over budget (a
    query without its question makes no sense). The window never opens on an assistant or
    tool message whose question was cut away. ``cost`` counts a message's tokens.
    """
    if not messages:
        return []
    budget = None if max_tokens is None else max_tokens - reserved_tokens
    start, used = len(messages), 0
    if keep_newest:
        start, used = start - 1, cost(messages[-1])
    while start > 0:
        if max_messages is not None and len(messages) - start >= max_messages:
            break
        tokens = cost(messages[start - 1])
        if budget is not None and used + tokens > budget:
            break
        used += tokens
        start -= 1
    last = len(messages) - 1 if keep_newest else len(messages)
    while start < last and messages[start].get("role") in ("assistant", "tool"):
        start += 1
    return list(messages[start:])


@dataclass(slots=True)
class HistoryStatistics:
    message_count: int
    user_messages: int
    assistant_messages: int
    approximate_tokens: int
    window_messages: int
    window_tokens: int


class ConversationHistory:
    """The messages of one session, with truncation by count and by approximate tokens.

    ``messages`` holds at most ``max_length`` entries (the oldest are dropped on add); the
    system prompt is kept apart and always leads ``get_messages()``.
    """

    def __init__(
        self,
        session_id: str,
        max_length: int = DEFAULTS.max_history_messages,
        max_tokens: int | None = DEFAULTS.max_history_tokens,
        system_prompt: str | None = None,
        messages: Iterable[ChatMessage] = (),
        created_at: datetime | None = None,
    ) -> None:
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.session_id = session_id
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.created_at = created_at or datetime.now(UTC)
        self.messages: list[ChatMessage] = []
        for message in messages:
            self._append(message)

    def add_user_message(self, content: str) -> None:
        self._append({"role": "user", "content": content})

    def add_assistant_message(
        self, content: str, tool_calls: list[dict[str, Any]] | None = None
    ) -> None:
        message: ChatMessage = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self._append(message)

    def add_message(self, message: ChatMessage) -> None:
        self._append(message)

    def clear(self) -> None:
        self.messages.clear()

    def _append(self, message: ChatMessage) -> None:
        if message.get("role") == "system":
            self.system_prompt = message.get("content", "")
            return
        self.messages.append(message)
        if len(self.messages) > self.max_length:
            del self.messages[: len(self.messages) - self.max_length]

    def _system_messages(self) -> list[ChatMessage]:
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def get_messages(self) -> list[ChatMessage]:
        """The system prompt (if any) followed by the window that fits the limits."""
        system = self._system_messages()
        reserved = sum(message_tokens(m) for m in system)
        window = fit_window(
            self.messages,
            max_messages=self.max_length,
            max_tokens=self.max_tokens,
            reserved_tokens=reserved,
        )
        return system + window

    def get_statistics(self) -> HistoryStatistics:
        window = self.get_messages()
        return HistoryStatistics(
            message_count=len(self.messages),
            user_messages=sum(1 for m in self.messages if m.get("role") == "user"),
            assistant_messages=sum(1 for m in self.messages if m.get("role") == "assistant"),
            approximate_tokens=sum(message_tokens(m) for m in self.messages),
            window_messages=len(window),
            window_tokens=sum(message_tokens(m) for m in window),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "max_length": self.max_length,
            "max_tokens": self.max_tokens,
            "system_prompt": self.system_prompt,
            "created_at": self.created_at.isoformat(),
            "messages": [dict(m) for m in self.messages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationHistory:
        created = data.get("created_at")
        return cls(
            session_id=data["session_id"],
            max_length=data.get("max_length", 50),
            max_tokens=data.get("max_tokens"),
            system_prompt=data.get("system_prompt"),
            messages=data.get("messages", []),
            created_at=datetime.fromisoformat(created) if created else None,
        )

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<ConversationHistory {self.session_id!r} messages={len(self.messages)}>"
