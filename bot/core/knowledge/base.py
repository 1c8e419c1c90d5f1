"""KnowledgeBase: a server's documents, chunked, embedded and searched by meaning.

A scope is a server ("guild:<id>"). Documents are chunked (``chunking``), embedded with
EMBEDDING_MODEL through the request manager's Embedder, stored with their vectors
(``bot.storage.knowledge``) and searched in memory (``index``). A passage already embedded
by the same model anywhere (same content hash) is never embedded again. Chunks embedded by
another model are stale: searches leave them out until ``reembed`` redoes them, so one
search never compares two models' vectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bot.core.documents import Document
from bot.core.embedding import Embedder, from_blob, to_blob
from bot.core.errors import AttachmentError, InvalidRequestError
from bot.core.knowledge.chunking import chunk_document
from bot.core.knowledge.clusters import EXACT_SCAN_MAX_ROWS
from bot.core.knowledge.index import VectorIndex
from bot.core.knowledge.lists import ListMaker
from bot.core.knowledge.records import (
    ADDED,
    REPLACED,
    UNCHANGED,
    AddedDocument,
    Chunk,
    DocumentRecord,
    NewChunk,
    Passage,
    Sources,
    StoredDocument,
)
from bot.core.knowledge.sources import sources_for

if TYPE_CHECKING:  # a manager without a database never loads SQLAlchemy
    from bot.storage.knowledge import KnowledgeStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], Awaitable[None] | None]

MAX_DOCUMENTS = 200  # per server
# Per server: ~300 MB of vectors at 768 dimensions and ~100 MB of text, far more than a
# community's documentation; searched in 2-4 ms at p95 through inverted lists past 20,000
# (bench/retrieval.py).
MAX_SERVER_CHUNKS = 100_000
# A document's text; read_document's max_chars for knowledge-base files (what /summarize
# reads too). About 1,100 chunks.
MAX_DOCUMENT_CHARS = 1_000_000
MAX_NAME_CHARS = 200  # kb_documents.name
MAX_PASSAGES = 50  # the most a search returns
# Texts embedded between two progress reports: a few seconds on a CPU-only server.
PROGRESS_BATCH = 64
REEMBED_BATCH = 256  # stale chunks read, embedded and written per round
# A scan of more rows than this (about a millisecond) runs in a worker thread (numpy
# releases the GIL), so a large base does not hold up the event loop's streaming answers.
THREAD_ROWS = 5_000


class KnowledgeBase:
    def __init__(
        self,
        store: KnowledgeStore,
        embedder: Embedder,
        *,
        passages: int = 4,
        min_score: float = 0.5,
        max_documents: int = MAX_DOCUMENTS,
        max_chunks: int = MAX_SERVER_CHUNKS,
        thread_rows: int = THREAD_ROWS,
        exact_max_rows: int = EXACT_SCAN_MAX_ROWS,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.passages = passages  # KNOWLEDGE_PASSAGES: a search's default k
        self.min_score = min_score  # KNOWLEDGE_MIN_SCORE: the relevance floor
        self.max_documents = max_documents
        self.max_chunks = max_chunks
        self.thread_rows = thread_rows
        self.exact_max_rows = exact_max_rows  # larger indexes get inverted lists
        self._indexes: dict[str, VectorIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # a scope's loads and changes, one at a time
        # Changes other processes made, per scope ("" counts "perhaps any"): a load that
        # overlapped one may hold what was there before, and is not kept.
        self._changes: dict[str, int] = {}
        self._lists = ListMaker(lambda scope: self._indexes.get(scope))

    @property
    def model(self) -> str:
        return self.embedder.model

    # documents -----------------------------------------------------------------------------
    async def add(
        self,
        scope: str,
        name: str,
        document: Document,
        *,
        channel_ids: Sequence[int] | None = None,
        added_by: int | None = None,
        progress: Progress | None = None,
    ) -> AddedDocument:
        """Add ``document`` as ``name`` (replacing a different one of that name; the same
        content again changes nothing but its channels). ``progress(done, total)`` follows
        the chunks as they are embedded. AttachmentError or InvalidRequestError say what is
        too large."""
        name = _checked_name(name)
        if document.characters > MAX_DOCUMENT_CHARS:
            raise AttachmentError(
                document.filename,
                AttachmentError.TOO_LONG,
                f"`{document.filename}` has {document.characters:,} characters; a knowledge-"
                f"base document can have at most {MAX_DOCUMENT_CHARS:,}.",
            )
        chunks = await asyncio.to_thread(chunk_document, document)
        if not chunks:
            raise AttachmentError(
                document.filename, AttachmentError.UNREADABLE, f"`{document.filename}` is empty."
            )
        digest = document_hash(document)
        pages = len(document.pages) if document.kind == "pdf" else None
        channels = None if channel_ids is None else tuple(sorted(set(channel_ids)))
        async with self._lock(scope):
            existing = await self.store.document(scope, name)
            if existing is not None and existing.content_hash == digest:
                if existing.channel_ids != channels:
                    await self.store.set_channels(existing.id, channels)
                    if scope in self._indexes:
                        self._indexes[scope].set_channels(existing.id, channels)
                size = document.characters
                return AddedDocument(name, existing.chunks, size, pages, UNCHANGED, 0)
            await self._check_room(scope, name, len(chunks), existing)
            vectors, embedded = await self._vectors_of(chunks, progress)
            document_id, chunk_ids, old = await self.store.put_document(
                scope,
                name,
                content_hash=digest,
                characters=document.characters,
                pages=pages,
                channel_ids=channels,
                added_by=added_by,
                new_chunks=[
                    NewChunk(chunk, self.model, to_blob(vector))
                    for chunk, vector in zip(chunks, vectors, strict=True)
                ],
            )
            index = self._loaded(scope)
            if index is not None:
                if old is not None:
                    index.remove(old)
                index.add(document_id, chunk_ids, vectors, channels)
                self._lists.keep(scope, index)
        status = ADDED if existing is None else REPLACED
        log.info("%s: %s %s (%d chunks, %d embedded)", scope, status, name, len(chunks), embedded)
        return AddedDocument(name, len(chunks), document.characters, pages, status, embedded)

    async def list(self, scope: str) -> list[DocumentRecord]:
        """A server's documents by name; ``stale`` counts chunks awaiting re-embedding."""
        return await self.store.documents(scope, self.model)

    async def remove(self, scope: str, name: str) -> int:
        """Delete a document with its chunks and vectors; how many chunks it had."""
        name = " ".join(name.split())
        async with self._lock(scope):
            removed = await self.store.delete_document(scope, name)
            if removed is None:
                raise InvalidRequestError(
                    f"There is no document named `{name}` in this server's knowledge base."
                )
            document_id, chunk_count = removed
            index = self._loaded(scope)
            if index is not None:
                index.remove(document_id)
                self._lists.keep(scope, index)
        log.info("%s: removed %s (%d chunks)", scope, name, chunk_count)
        return chunk_count

    # search --------------------------------------------------------------------------------
    async def search(
        self,
        scope: str,
        query: str,
        *,
        channel_id: int | None = None,
        k: int | None = None,
        min_score: float | None = None,
    ) -> list[Passage]:
        """The passages closest in meaning to ``query``, best first, none below the floor
        (``min_score``, default KNOWLEDGE_MIN_SCORE); with ``channel_id``, only documents
        allowed there. A server without documents costs no embedding."""
        text = query.strip()
        if not text:
            raise InvalidRequestError("Say what to search for.")
        wanted = self.passages if k is None else k
        if not 1 <= wanted <= MAX_PASSAGES:
            raise InvalidRequestError(f"Ask for 1 to {MAX_PASSAGES} passages.")
        floor = self.min_score if min_score is None else min_score
        index = await self._index(scope)
        if not len(index):
            return []
        vector = (await self.embedder.embed([text])).vectors[0]
        snapshot = index.snapshot()
        if snapshot.matrix.shape[1] != vector.shape[0]:
            log.warning("%s: %s now makes %d-dimension vectors, the index has %d", scope,
                        self.model, vector.shape[0], snapshot.matrix.shape[1])  # fmt: skip
            return []
        if len(snapshot.chunk_ids) > self.thread_rows:
            hits = await asyncio.to_thread(
                snapshot.search, vector, wanted, channel_id=channel_id, min_score=floor
            )
        else:
            hits = snapshot.search(vector, wanted, channel_id=channel_id, min_score=floor)
        texts = await self.store.passages([hit.chunk_id for hit in hits])
        return [
            Passage(t.document, t.page, t.heading, t.text, hit.score, t.position)
            for hit in hits
            if (t := texts.get(hit.chunk_id)) is not None  # removed meanwhile
        ]

    async def preload(self, scope: str) -> int:
        """Read a server's vectors now rather than on its first search; how many there are."""
        return len(await self._index(scope))

    def memory(self) -> int:
        """Bytes the loaded indexes take (their vectors and ids)."""
        return sum(index.nbytes for index in self._indexes.values())

    @staticmethod
    def sources_for(passages: Sequence[Passage]) -> Sources:
        """Numbered sources for ``prompt.with_sources`` and their footer labels."""
        return sources_for(passages)

    # models --------------------------------------------------------------------------------
    async def stale(self, scope: str | None) -> int:
        """Chunks (of a server, or of all with None) that searches skip until re-embedded
        with the current EMBEDDING_MODEL."""
        return await self.store.stale_count(scope, self.model)

    async def reembed(self, scope: str | None = None, progress: Progress | None = None) -> int:
        """Re-embed every stale chunk (of a server, or of all) with the current model;
        how many were. Searches see them once it is done."""
        total = await self.store.stale_count(scope, self.model)
        done, after = 0, 0
        touched: set[str] = set()
        await _report(progress, 0, total)
        while batch := await self.store.stale_chunks(scope, self.model, after=after,
                                                     limit=REEMBED_BATCH):  # fmt: skip
            chunks = [Chunk(c.text, None, c.heading, c.content_hash) for c in batch]
            vectors, _ = await self._vectors_of(chunks, None)
            rows = [(c.id, self.model, to_blob(v)) for c, v in zip(batch, vectors, strict=True)]
            done += await self.store.set_embeddings(rows)
            touched.update(c.scope for c in batch)
            after = batch[-1].id
            await _report(progress, min(done, total), total)
        for name in touched:  # reloaded, with the new vectors, on the next search
            self._indexes.pop(name, None)
        if done:
            log.info("re-embedded %d chunks with %s", done, self.model)
        return done

    def forget(self, scopes: Sequence[str] | None) -> None:
        """Another process changed these servers' documents or vectors (None: perhaps
        any): their indexes are read again on their next search."""
        for scope in [""] if scopes is None else scopes:
            self._changes[scope] = self._changes.get(scope, 0) + 1
            self._indexes.pop(scope, None)
        if scopes is None:
            self._indexes.clear()

    async def close(self) -> None:
        """Stop making inverted lists (a thread already at it finishes on its own)."""
        await self._lists.close()

    async def clustered(self, scope: str) -> None:
        """Wait until the server's index has the inverted lists it needs (tests, benches)."""
        await self._lists.wait(scope)

    # internals -----------------------------------------------------------------------------
    def _lock(self, scope: str) -> asyncio.Lock:
        return self._locks.setdefault(scope, asyncio.Lock())

    def _loaded(self, scope: str) -> VectorIndex | None:
        index = self._indexes.get(scope)
        if index is not None and index.model != self.model:  # EMBEDDING_MODEL changed
            del self._indexes[scope]
            return None
        return index

    async def _index(self, scope: str) -> VectorIndex:
        """The server's index, read from the database on first use."""
        index = self._loaded(scope)
        if index is not None:
            return index
        async with self._lock(scope):
            index = self._loaded(scope)
            if index is None:
                before = self._version(scope)
                index = await self._load(scope)
                if self._version(scope) == before:
                    self._indexes[scope] = index
                    self._lists.keep(scope, index)
            return index

    def _version(self, scope: str) -> int:
        return self._changes.get("", 0) + self._changes.get(scope, 0)

    async def _load(self, scope: str) -> VectorIndex:
        stored = await self.store.vectors(scope, self.model)
        index = VectorIndex(self.model, exact_max_rows=self.exact_max_rows)
        count = len(stored.chunk_ids)
        if count:
            matrix = np.frombuffer(stored.embeddings, dtype="<f4").reshape(count, -1)
            index.load(stored.chunk_ids, stored.document_ids, matrix, stored.channels)
        else:
            for document_id, channels in stored.channels.items():
                index.set_channels(document_id, channels)
        log.debug("%s: loaded %d vectors of %s", scope, count, self.model)
        return index

    async def _check_room(
        self, scope: str, name: str, new: int, existing: StoredDocument | None
    ) -> None:
        documents, chunk_count = await self.store.totals(scope)
        replaced = 0 if existing is None else existing.chunks
        if existing is None and documents >= self.max_documents:
            raise InvalidRequestError(
                f"This server's knowledge base already has {documents} documents, the most "
                "it can hold; remove one before adding another."
            )
        if chunk_count - replaced + new > self.max_chunks:
            raise InvalidRequestError(
                f"`{name}` makes {new:,} passages, and this server's knowledge base has "
                f"{chunk_count - replaced:,} of at most {self.max_chunks:,}; remove some "
                "documents first."
            )

    async def _vectors_of(
        self, chunks: Sequence[Chunk], progress: Progress | None
    ) -> tuple[np.ndarray, int]:
        """A vector per chunk: stored ones reused by content hash, the rest embedded (each
        distinct text once). Also how many were embedded."""
        known = await self.store.embeddings_of({c.content_hash for c in chunks}, self.model)
        vectors = {h: from_blob(blob) for h, blob in known.items()}
        missing: dict[str, str] = {}
        for chunk in chunks:
            if chunk.content_hash not in vectors:
                missing.setdefault(chunk.content_hash, chunk.embedding_text)
        total = len(chunks)
        done = sum(1 for c in chunks if c.content_hash in vectors)
        await _report(progress, done, total)
        pending = list(missing.items())
        for start in range(0, len(pending), PROGRESS_BATCH):
            part = pending[start : start + PROGRESS_BATCH]
            embedded = await self.embedder.embed([text for _, text in part])
            vectors.update(zip((h for h, _ in part), embedded.vectors, strict=True))
            done = sum(1 for c in chunks if c.content_hash in vectors)
            await _report(progress, done, total)
        rows = [vectors[c.content_hash] for c in chunks]
        if len({row.shape for row in rows}) > 1:  # a stored vector of another length
            raise InvalidRequestError(
                f"The embedding model `{self.model}` returned vectors of different lengths."
            )
        return np.vstack(rows), len(missing)


def document_hash(document: Document) -> str:
    """What makes two uploads "the same document": the same kind and the same text."""
    return hashlib.sha256(f"{document.kind}\n{document.text}".encode()).hexdigest()


def _checked_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidRequestError("A knowledge-base document needs a name.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidRequestError(
            f"A knowledge-base document's name can be at most {MAX_NAME_CHARS} characters."
        )
    return cleaned


async def _report(progress: Progress | None, done: int, total: int) -> None:
    """Tell ``progress``; its failure (a message that could not be edited) is not ours."""
    if progress is None:
        return
    try:
        result = progress(done, total)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.warning("knowledge-base progress callback failed", exc_info=True)
