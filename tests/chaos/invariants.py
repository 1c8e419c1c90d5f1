"""What every chaos test checks in the database: each question's turn stored at most once,
whole (the question followed by one answer), and none of another session's."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

SETTLE_SECONDS = 5.0  # an answer is shown before its turn is written


class MessageSource(Protocol):
    async def messages(self, session_id: str) -> Sequence[Mapping[str, Any]]: ...


def turns_of(messages: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(question, answer) per stored turn; an answer is the turn's last assistant text."""
    turns: list[tuple[str, str]] = []
    question: str | None = None
    answer = ""
    for message in messages:
        if message["role"] == "user":
            if question is not None:
                turns.append((question, answer))
            question, answer = str(message["content"]), ""
        elif message["role"] == "assistant" and message.get("content"):
            answer = str(message["content"])
    if question is not None:
        turns.append((question, answer))
    return turns


def check_turns(
    messages: Iterable[Mapping[str, Any]],
    *,
    answered: Iterable[str],
    unanswered: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """Assert that every ``answered`` question is stored exactly once with a non-empty answer,
    that no ``unanswered`` one is stored, and that nothing is stored twice."""
    turns = turns_of(messages)
    counts = Counter(question for question, _ in turns)
    twice = sorted(q for q, n in counts.items() if n > 1)
    assert not twice, f"stored more than once: {twice}"
    stored = dict(turns)
    missing = sorted(q for q in answered if q not in stored)
    assert not missing, f"answered but not stored: {missing}"
    empty = sorted(q for q in answered if not stored[q])
    assert not empty, f"stored without an answer: {empty}"
    ghosts = sorted(q for q in unanswered if q in stored)
    assert not ghosts, f"stored although never answered: {ghosts}"
    return turns


async def settled_turns(
    store: MessageSource, session_id: str, *, at_least: int
) -> list[tuple[str, str]]:
    """The session's turns once at least ``at_least`` are stored (or after SETTLE_SECONDS)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        turns = turns_of(await store.messages(session_id))
        if len(turns) >= at_least or loop.time() > deadline:
            return turns
        await asyncio.sleep(0.02)
