"""Assembling the messages of a query: system prompt, history window, RAG context."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.core.errors import InvalidRequestError
from bot.core.history import ChatMessage, fit_window, message_tokens

# Far above anything Discord lets a user paste, but low enough that one request cannot
# exhaust memory or the database.
MAX_INPUT_CHARS = 400_000
VALID_ROLES = ("system", "user", "assistant", "tool")


def user_content(
    prompt: str | None, extra_context: str | None, documents: Sequence[str] | None
) -> str | None:
    """The user message, with retrieved context placed before the question."""
    if prompt is None:
        return None
    blocks = []
    if documents:
        numbered = "\n\n".join(f"[{i}] {doc.strip()}" for i, doc in enumerate(documents, 1))
        blocks.append(f"Documents:\n{numbered}")
    if extra_context:
        blocks.append(f"Context:\n{extra_context.strip()}")
    if not blocks:
        return prompt
    context = "\n\n".join(blocks)
    return f"Use the following information to answer.\n\n{context}\n\nQuestion: {prompt}"


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    """Validate caller-supplied messages into plain dicts Ollama accepts."""
    result: list[ChatMessage] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in VALID_ROLES:
            raise InvalidRequestError(f"Message {i} has an invalid role {role!r}.")
        message: ChatMessage = {"role": role, "content": str(m.get("content") or "")}
        for key in ("tool_calls", "tool_name", "images"):
            if m.get(key):
                message[key] = m[key]  # type: ignore[literal-required]
        result.append(message)
    return result


def assemble(
    *,
    system_prompt: str | None,
    history: Sequence[ChatMessage],
    new_messages: Sequence[ChatMessage],
    max_messages: int | None,
    max_tokens: int | None,
    cost: Callable[[ChatMessage], int] = message_tokens,
) -> list[ChatMessage]:
    """System prompt, then as much history as fits, then the new messages (always kept).

    ``max_tokens`` bounds the whole, each message counted by ``cost``.
    """
    system: list[ChatMessage] = (
        [{"role": "system", "content": system_prompt}] if system_prompt else []
    )
    reserved = sum(cost(m) for m in [*system, *new_messages])
    window: list[ChatMessage] = []
    if history:
        room = None if max_messages is None else max_messages - len(new_messages)
        if room is None or room > 0:
            window = fit_window(
                history,
                max_messages=room,
                max_tokens=max_tokens,
                reserved_tokens=reserved,
                keep_newest=False,
                cost=cost,
            )
    result = [*system, *window, *new_messages]
    check_size(result)
    return result


def check_size(messages: Sequence[ChatMessage]) -> None:
    total = sum(len(m.get("content", "")) for m in messages)
    if total > MAX_INPUT_CHARS:
        raise InvalidRequestError(
            f"The request is too long ({total:,} characters; the limit is {MAX_INPUT_CHARS:,})."
        )
