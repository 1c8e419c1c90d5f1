"""The running summary: the messages that fall out of a conversation's history window are
folded, in the background, into a summary stored with the conversation (the planner sends
it after the system prompt), instead of being silently forgotten.

The window here is the history's message count (``max_history_messages``), as the planner
fills it: the question, then the newest stored messages but never opening on an answer. The
stored messages it cannot hold, newer than the last one already folded, are due (a window
also bounded by tokens may send fewer: those are not folded until they fall out). They
are folded a few at a time (``min_messages``), so a long conversation costs one summary
request every few turns rather than one per turn. One fold per conversation runs at a time;
turns stored meanwhile make it look again when it is done. A failure is logged and the fold
is tried again at the conversation's next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.core.background import stop_tasks
from bot.core.errors import OllacordError

if TYPE_CHECKING:
    from bot.storage.memory import FoldState, MemoryStore

log = logging.getLogger(__name__)

# Asks a model: (prompt, the conversation's model or None) -> its answer. The manager's own
# ask, which may prefer SUMMARY_MODEL.
Summarize = Callable[[str, str | None], Awaitable[str]]

MAX_SUMMARY_CHARS = 1500
# What a fold may generate: about 4,000 characters, well past MAX_SUMMARY_CHARS, so only a
# model that rambles is cut (and the summary is then cut to a sentence end, as always). A
# fold runs in the background on a slot the members' questions need.
SUMMARY_MAX_TOKENS = 1024
# Fallen-out messages that make a fold worth a request: two turns.
FOLD_MIN_MESSAGES = 4
# Messages per fold, and the characters of each shown to the model: with the previous
# summary and the instructions about 12k characters, ~4k tokens, well inside the default
# 8192-token window with room for the answer.
FOLD_BATCH = 20
FOLD_MESSAGE_CHARS = 500
MAX_CONCURRENT_FOLDS = 2  # summaries share Ollama with the answers people wait for

PROMPT = """You keep the running summary of a conversation between users and an assistant.
Older messages are no longer shown to the assistant; only this summary is.

Previous summary:
{summary}

Messages to add to it, oldest first:
{messages}

Write the updated summary: the previous one with what these messages add. Keep facts,
decisions, names, numbers, preferences and open questions; drop greetings and small talk.
Write at most {limit} characters, as short plain sentences, and nothing but the summary."""


class SummaryError(OllacordError):
    """A fold failed for a reason of its own (the model wrote nothing)."""


def fold_prompt(state: FoldState, limit: int = MAX_SUMMARY_CHARS) -> str:
    lines = [
        f"{m.role}: {' '.join(m.content.split())}"
        for m in state.messages
        if m.role in ("user", "assistant") and m.content.strip()
    ]
    return PROMPT.format(
        summary=(state.summary or "").strip() or "(none yet)",
        messages="\n".join(lines) or "(only tool calls)",
        limit=limit,
    )


def bounded(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """The summary within ``limit`` characters, cut after a sentence where possible."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("\n"))
    return (cut[: end + 1] if end >= limit // 2 else cut[: limit - 1] + "…").strip()


class SummaryKeeper:
    def __init__(
        self,
        store: MemoryStore,
        summarize: Summarize,
        *,
        window: int,
        min_messages: int = FOLD_MIN_MESSAGES,
        max_chars: int = MAX_SUMMARY_CHARS,
    ) -> None:
        self._store = store
        self._summarize = summarize
        self.window = window
        self._min_messages = max(1, min_messages)
        self._max_chars = max_chars
        self._folds: dict[str, asyncio.Task[None]] = {}  # conversation -> its fold
        self._again: set[str] = set()  # turns stored while their conversation was folding
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_FOLDS)
        self._closed = False

    def note_stored(self, session_id: str) -> None:
        """A turn was stored: fold what fell out of the window, in the background."""
        if self._closed or self.window <= 0:
            return
        if session_id in self._folds:
            self._again.add(session_id)
            return
        self._folds[session_id] = asyncio.create_task(
            self._run(session_id), name=f"summary:{session_id}"
        )

    async def idle(self) -> None:
        """Wait until no fold is running."""
        while self._folds:
            await asyncio.gather(*self._folds.values(), return_exceptions=True)

    async def close(self) -> None:
        """A fold in progress gets a moment to finish (its model call, then its write);
        cut short, it is done again at the conversation's next turn."""
        self._closed = True
        await stop_tasks(list(self._folds.values()))

    async def _run(self, session_id: str) -> None:
        try:
            while True:
                self._again.discard(session_id)
                try:
                    await self.fold(session_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    reason = exc.user_message if isinstance(exc, OllacordError) else repr(exc)
                    log.warning(
                        "summary of %s not updated (%s); tried again at its next turn",
                        session_id,
                        reason,
                        exc_info=not isinstance(exc, OllacordError),
                    )
                    return
                if session_id not in self._again or self._closed:
                    return
        finally:
            self._folds.pop(session_id, None)
            self._again.discard(session_id)

    async def fold(self, session_id: str) -> bool:
        """Fold what fell out of the window into the summary now; True if it changed."""
        changed = False
        while True:
            state = await self._store.fold_state(
                session_id,
                keep_newest=max(0, self.window - 1),  # the question takes a place too
                limit=FOLD_BATCH,
                max_chars=FOLD_MESSAGE_CHARS,
            )
            if state is None or not state.messages or state.pending < self._min_messages:
                return changed
            async with self._slots:
                answer = await self._summarize(fold_prompt(state, self._max_chars), state.model)
            summary = bounded(answer, self._max_chars)
            if not summary:
                raise SummaryError("the model wrote an empty summary")
            saved = await self._store.save_summary(
                session_id, summary, upto=state.messages[-1], previous_upto=state.upto
            )
            if not saved:  # cleared or reset meanwhile: what was folded is gone
                return changed
            changed = True
            log.debug("summary of %s now covers message %d", session_id, state.messages[-1].id)
            if state.pending <= len(state.messages):
                return changed
