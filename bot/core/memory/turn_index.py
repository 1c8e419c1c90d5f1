"""The turn index: every stored user and assistant message gets a vector in the background,
so a conversation can be searched by meaning.

One worker does all the embedding, so an answer never waits for it and embedding never
takes more than its share of Ollama. A stored turn only puts its conversation in a bounded
queue; when the queue is full the conversation is marked overdue and embedded once the
queue has drained, so nothing is dropped. At start, and after any failure, a catch-up pass
embeds every message that has no vector of the current model (newest first: recent
conversations are the likeliest searched), which also re-embeds vectors of a former model.
A failure (the model missing, Ollama down, the database busy) is logged once, then retried
with a growing delay until it works again; it never reaches an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

import numpy as np

from bot.core.background import stop_tasks
from bot.core.embedding import Embedder, to_blob
from bot.core.errors import OllacordError
from bot.core.history import ChatMessage, Role

if TYPE_CHECKING:  # a manager without a database never loads SQLAlchemy
    from bot.storage.memory import MemoryStore, StoredText

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_SIZE = 256  # conversations waiting for the worker; beyond it they are marked overdue
INDEX_BATCH = 64  # messages read and embedded at a time
# Embedded text per message: an embedding model reads ~2k tokens at most (nomic-embed-text),
# and a message's start says what it is about.
MAX_TURN_CHARS = 6000
MAX_QUERY_CHARS = 1000
# Below this cosine a message is not "about" the query. Embedding models give unrelated
# texts ~0.3-0.45; a shared subject lifts it well above.
DEFAULT_MIN_SCORE = 0.5
RESULT_CHARS = 2000  # of a found message's text


@dataclass(frozen=True, slots=True)
class RetryDelays:
    """Seconds before trying again after a failure: ``first``, doubling up to ``longest``."""

    first: float = 5.0
    longest: float = 300.0

    def after(self, failures: int) -> float:
        return min(self.longest, self.first * 2 ** max(0, failures - 1))


class FoundTurn(NamedTuple):
    """A message found by meaning, and its cosine similarity to the query."""

    message: ChatMessage
    score: float


class TurnIndex:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        retry: RetryDelays | None = None,
        queue_size: int = QUEUE_SIZE,
        batch: int = INDEX_BATCH,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self.min_score = min_score
        self._retry = retry or RetryDelays()
        self._batch = batch
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self._queued: set[str] = set()  # in the queue, not yet taken by the worker
        self._overdue: set[str] = set()  # stored while the queue was full
        self._catch_up = True  # the whole database, at start and after a failure
        self._failures = 0
        self._idle = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._resting = False  # waiting for work or after a failure: nothing to cut short

    @property
    def model(self) -> str:
        return self._embedder.model

    def start(self) -> None:
        if self._worker is None:
            self._idle.clear()
            self._worker = asyncio.create_task(self._work(), name="turn-index")

    async def close(self) -> None:
        """Stop the worker: at once while it rests, else after its current batch."""
        worker, self._worker = self._worker, None
        self._stopping = True
        if worker is not None:
            if self._resting:
                worker.cancel()
            await stop_tasks([worker])
        self._idle.set()

    def note_stored(self, session_id: str) -> None:
        """A turn of ``session_id`` was stored: embed it soon. Never waits.

        Before start() nothing is noted: the catch-up at start finds every such turn."""
        if self._worker is None:
            return
        self._idle.clear()
        if session_id in self._queued:
            return  # the worker has not taken it yet: it will find this turn too
        try:
            self._queue.put_nowait(session_id)
        except asyncio.QueueFull:
            if not self._overdue:
                log.warning("turn index: queue full, conversations will be embedded later")
            self._overdue.add(session_id)
        else:
            self._queued.add(session_id)

    async def idle(self) -> None:
        """Wait until every stored message that can be embedded is (the worker waits for
        work); returns at once if the index is not running."""
        if self._worker is not None:
            await self._idle.wait()

    # searching ---------------------------------------------------------------------------
    async def search(self, session_id: str, query: str, k: int) -> list[FoundTurn] | None:
        """The session's ``k`` messages closest in meaning to ``query`` (best first, above
        the floor); None when the session has no vectors of the current model yet, so the
        caller can search another way. Raises OllamaError if the query cannot be embedded."""
        model = self.model
        stored = await self._store.vectors_of(session_id, model)
        if not stored:
            return None
        [wanted] = (await self._embedder.embed([query[:MAX_QUERY_CHARS]], model=model)).vectors
        ids = [message_id for message_id, blob in stored if len(blob) == wanted.nbytes]
        if not ids:  # vectors of another size: the same name now means another model
            return None
        matrix = np.frombuffer(
            b"".join(blob for _, blob in stored if len(blob) == wanted.nbytes), dtype="<f4"
        ).reshape(len(ids), -1)
        scores = matrix @ wanted
        best = [i for i in np.argsort(-scores, kind="stable")[:k] if scores[i] >= self.min_score]
        if not best:
            return []
        score_of = {ids[i]: float(scores[i]) for i in best}
        texts = await self._store.texts(session_id, list(score_of), RESULT_CHARS)
        found = [
            FoundTurn(ChatMessage(role=cast(Role, t.role), content=t.content), score_of[t.id])
            for t in texts
        ]
        return sorted(found, key=lambda turn: -turn.score)

    # the worker ----------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._stopping:
            session_id = None
            try:
                if self._catch_up:
                    await self._embed_pending(None)
                    self._catch_up = False
                else:
                    session_id = self._next()
                    if session_id is None:
                        self._idle.set()
                        session_id = await self._rest(self._queue.get())
                        self._queued.discard(session_id)
                    await self._embed_pending(session_id)
                self._succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it is, the worker goes on after a pause
                self._catch_up = True  # covers session_id and whatever else was missed
                await self._rest(asyncio.sleep(self._failed(exc)))

    async def _rest(self, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` marked as resting: a stop then cancels at once."""
        self._resting = True
        try:
            return await waiting
        finally:
            self._resting = False

    def _next(self) -> str | None:
        with contextlib.suppress(asyncio.QueueEmpty):
            session_id = self._queue.get_nowait()
            self._queued.discard(session_id)
            return session_id
        return self._overdue.pop() if self._overdue else None

    async def _embed_pending(self, session_id: str | None) -> None:
        """Embed the messages without a vector of the current model (of one session, or of
        all), a batch at a time from the newest down. Turns stored meanwhile are newer: their
        own note_stored brings them."""
        model = self.model
        before = None
        while True:
            pending = await self._store.unembedded(
                model, self._batch, session_id=session_id, before=before, max_chars=MAX_TURN_CHARS
            )
            if not pending:
                return
            await self._embed(model, pending)
            if len(pending) < self._batch or self._stopping:
                return
            before = pending[-1].id

    async def _embed(self, model: str, texts: list[StoredText]) -> None:
        from bot.storage.memory import TurnVector

        embedded = await self._embedder.embed([t.content for t in texts], model=model)
        vectors = [
            TurnVector(t.id, t.created_at, model, to_blob(vector))
            for t, vector in zip(texts, embedded.vectors, strict=True)
        ]
        await self._store.save_vectors(vectors)

    def _succeeded(self) -> None:
        if self._failures:
            log.info("turn index: embedding with %s works again", self.model)
        self._failures = 0

    def _failed(self, exc: Exception) -> float:
        """Log the first failure of a series (the rest at debug); the pause before retrying."""
        self._failures += 1
        delay = self._retry.after(self._failures)
        reason = exc.user_message if isinstance(exc, OllacordError) else repr(exc)
        if self._failures == 1:
            log.warning(
                "turn index: cannot embed with %s (%s); conversations stay searchable by "
                "words, and embedding is retried in the background",
                self.model,
                reason,
                exc_info=not isinstance(exc, OllacordError),
            )
        else:
            log.debug("turn index: still failing (%s), next try in %.0fs", reason, delay)
        return delay
