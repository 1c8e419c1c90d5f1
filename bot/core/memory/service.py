"""Memory: the one object the request manager builds, starts and closes for the memory
layer, and what the executor, the tools and the front end call."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.core.embedding import Embedder
from bot.core.memory.notes import MemberNotes, remember_tool
from bot.core.memory.summary import FOLD_MIN_MESSAGES, Summarize, SummaryKeeper
from bot.core.memory.turn_index import DEFAULT_MIN_SCORE, FoundTurn, RetryDelays, TurnIndex
from bot.core.tools.registry import Tool

if TYPE_CHECKING:
    from bot.storage.memory import MemoryStore

log = logging.getLogger(__name__)


class Memory:
    """The turn index, the running summaries and the members' notes of one database.

    ``summarize(prompt, model)`` asks a model and returns its answer (``model`` is the
    conversation's, or None); ``max_history_messages`` is the history window the planner
    sends, past which messages are folded into the summary.
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        summarize: Summarize,
        *,
        max_history_messages: int,
        min_score: float = DEFAULT_MIN_SCORE,
        fold_min_messages: int = FOLD_MIN_MESSAGES,
        retry: RetryDelays | None = None,
    ) -> None:
        self.turns = TurnIndex(store, embedder, min_score=min_score, retry=retry)
        self.summaries = SummaryKeeper(
            store, summarize, window=max_history_messages, min_messages=fold_min_messages
        )
        self.notes = MemberNotes(store)

    def start(self) -> None:
        """Start the background work: a catch-up pass over every stored message without a
        vector of the current model, then the turns as they are stored."""
        self.turns.start()

    async def close(self) -> None:
        """Stop the background work (a fold in progress is abandoned, and redone later)."""
        await self.turns.close()
        await self.summaries.close()

    def on_turn_stored(self, session_id: str) -> None:
        """A turn of ``session_id`` was stored: index it and fold what fell out of the
        window, in the background. Never waits and never raises."""
        try:
            self.turns.note_stored(session_id)
            self.summaries.note_stored(session_id)
        except Exception:  # the answer is already stored and shown: nothing may undo it
            log.exception("memory: could not note a stored turn of %s", session_id)

    async def search(self, session_id: str, query: str, k: int) -> list[FoundTurn] | None:
        """The session's messages closest in meaning to ``query`` (best first, above the
        floor); None when the session has no vectors yet (search another way)."""
        return await self.turns.search(session_id, query, k)

    async def notes_for(self, scope: str, user_id: int) -> list[str]:
        """The asker's notes for a question (``notes=[...]``); none where notes are off."""
        if not await self.notes.enabled(scope):
            return []
        return await self.notes.notes_for(scope, user_id)

    def tools(self) -> list[Tool]:
        """The tools of the memory layer, for the manager's registry: ``remember``."""
        return [remember_tool(self.notes)]

    async def idle(self) -> None:
        """Wait until the background work is done (every turn embedded that can be, no
        fold running)."""
        await self.turns.idle()
        await self.summaries.idle()
