"""KnowledgeStore: the documents of the servers' knowledge bases, their chunks and vectors.

As in SessionStore, each method is one database operation in its own session and
transaction, writes are serialised in-process (SQLite admits one writer at a time), and
database failures become StorageError. Vectors are bytes here (float32, little-endian);
the core turns them into arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

from bot.core.knowledge.records import (
    DocumentRecord,
    NewChunk,
    PassageText,
    ScopeVectors,
    StaleChunk,
    StoredDocument,
)
from bot.storage import notify
from bot.storage.models import KbChunk, KbDocument, utcnow
from bot.storage.operations import Store
from bot.storage.turns import IDS_PER_STATEMENT

log = logging.getLogger(__name__)

ROWS_PER_INSERT = 500  # chunks per INSERT statement (SQLite's bound-parameter limit)
VECTOR_ROWS_PER_READ = 2048  # rows fetched at a time when loading a server's vectors


def _parts(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _channels(value: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(c) for c in value)


def _stale(model: str) -> Any:
    """Chunks a search with ``model`` cannot use (another model's vector, or none)."""
    return or_(KbChunk.model.is_(None), KbChunk.model != model, KbChunk.embedding.is_(None))


class KnowledgeStore(Store):
    # reads ---------------------------------------------------------------------------------
    async def documents(self, scope: str, model: str) -> list[DocumentRecord]:
        """A server's documents by name, with their chunk counts and how many of those a
        search with ``model`` cannot use yet."""
        counts = (
            select(
                KbChunk.document_id,
                func.count().label("n"),
                func.sum(case((_stale(model), 1), else_=0)).label("stale"),
            )
            .group_by(KbChunk.document_id)
            .subquery()
        )
        query = (
            select(KbDocument, func.coalesce(counts.c.n, 0), func.coalesce(counts.c.stale, 0))
            .outerjoin(counts, counts.c.document_id == KbDocument.id)
            .where(KbDocument.scope == scope)
            .order_by(KbDocument.name)
        )
        async with self._reading() as db:
            rows = (await db.execute(query)).all()
        return [
            DocumentRecord(
                doc.name,
                int(n),
                doc.characters,
                doc.pages,
                _channels(doc.channel_ids),
                doc.added_by,
                doc.created_at,
                int(stale),
            )
            for doc, n, stale in rows
        ]

    async def document(self, scope: str, name: str) -> StoredDocument | None:
        count = select(func.count()).where(KbChunk.document_id == KbDocument.id).scalar_subquery()
        query = select(
            KbDocument.id, KbDocument.content_hash, KbDocument.channel_ids, count.label("n")
        ).where(KbDocument.scope == scope, KbDocument.name == name)
        async with self._reading() as db:
            row = (await db.execute(query)).one_or_none()
        if row is None:
            return None
        return StoredDocument(row.id, row.content_hash, _channels(row.channel_ids), int(row.n))

    async def totals(self, scope: str) -> tuple[int, int]:
        """(documents, chunks) of a server."""
        async with self._reading() as db:
            documents = await db.scalar(
                select(func.count()).select_from(KbDocument).where(KbDocument.scope == scope)
            )
            chunk_count = await db.scalar(
                select(func.count())
                .select_from(KbChunk)
                .join(KbDocument, KbDocument.id == KbChunk.document_id)
                .where(KbDocument.scope == scope)
            )
        return int(documents or 0), int(chunk_count or 0)

    async def embeddings_of(self, hashes: Collection[str], model: str) -> dict[str, bytes]:
        """A stored vector by ``model`` for each of these content hashes that has one (in
        any server: equal text makes an equal vector, so sharing it reveals nothing)."""
        found: dict[str, bytes] = {}
        async with self._reading() as db:
            for part in _parts(sorted(set(hashes)), IDS_PER_STATEMENT):
                query = select(KbChunk.content_hash, KbChunk.embedding).where(
                    KbChunk.content_hash.in_(part),
                    KbChunk.model == model,
                    KbChunk.embedding.is_not(None),
                )
                for content_hash, blob in (await db.execute(query)).all():
                    found.setdefault(content_hash, blob)
        return found

    async def vectors(self, scope: str, model: str) -> ScopeVectors:
        """Every vector of ``model`` in a server, as the index loads them.

        The rows are streamed into one buffer of the final size: 100,000 vectors are 300 MB,
        and holding them as rows first, then joined, would take three times that.
        """
        where = (KbDocument.scope == scope, KbChunk.model == model, KbChunk.embedding.is_not(None))
        joined = select(KbChunk.id).join(KbDocument, KbDocument.id == KbChunk.document_id)
        rows_query = (
            select(KbChunk.id, KbChunk.document_id, KbChunk.embedding)
            .join(KbDocument, KbDocument.id == KbChunk.document_id)
            .where(*where)
            .order_by(KbChunk.document_id, KbChunk.position)
        )
        documents_query = select(KbDocument.id, KbDocument.channel_ids).where(
            KbDocument.scope == scope
        )
        chunk_ids: list[int] = []
        document_ids: list[int] = []
        buffer = bytearray()
        width = 0
        async with self._reading() as db:  # one read transaction: the count holds
            channels = {
                row.id: _channels(row.channel_ids)
                for row in (await db.execute(documents_query)).all()
            }
            total = int(
                await db.scalar(select(func.count()).select_from(joined.where(*where).subquery()))
                or 0
            )
            result = await db.stream(rows_query)
            async for part in result.partitions(VECTOR_ROWS_PER_READ):
                for chunk_id, document_id, blob in part:
                    if not width:
                        width = len(blob)
                        buffer = bytearray(width * total)
                    if len(blob) != width or len(chunk_ids) == total:
                        log.warning(
                            "%s: skipped chunk %d's vector of %d bytes", scope, chunk_id, len(blob)
                        )
                        continue
                    start = len(chunk_ids) * width
                    buffer[start : start + width] = blob
                    chunk_ids.append(chunk_id)
                    document_ids.append(document_id)
        del buffer[len(chunk_ids) * width :]  # rows skipped: drop the unused end, in place
        return ScopeVectors(tuple(chunk_ids), tuple(document_ids), buffer, channels)

    async def passages(self, chunk_ids: Collection[int]) -> dict[int, PassageText]:
        """The words of these chunks and their documents' names, by chunk id."""
        found: dict[int, PassageText] = {}
        async with self._reading() as db:
            for part in _parts(list(chunk_ids), IDS_PER_STATEMENT):
                query = (
                    select(
                        KbChunk.id,
                        KbDocument.name,
                        KbChunk.position,
                        KbChunk.page,
                        KbChunk.heading,
                        KbChunk.text,
                    )
                    .join(KbDocument, KbDocument.id == KbChunk.document_id)
                    .where(KbChunk.id.in_(part))
                )
                for row in (await db.execute(query)).all():
                    found[row.id] = PassageText(*row)
        return found

    async def stale_count(self, scope: str | None, model: str) -> int:
        """Chunks (of one server, or all) that a search with ``model`` cannot use."""
        query = select(func.count()).select_from(KbChunk).where(_stale(model))
        if scope is not None:
            query = query.join(KbDocument, KbDocument.id == KbChunk.document_id).where(
                KbDocument.scope == scope
            )
        async with self._reading() as db:
            return int(await db.scalar(query) or 0)

    async def stale_chunks(
        self, scope: str | None, model: str, *, after: int = 0, limit: int = 256
    ) -> list[StaleChunk]:
        """The next chunks to re-embed with ``model``, by id after ``after``."""
        query = (
            select(
                KbChunk.id, KbDocument.scope, KbChunk.text, KbChunk.heading, KbChunk.content_hash
            )
            .join(KbDocument, KbDocument.id == KbChunk.document_id)
            .where(_stale(model), KbChunk.id > after)
            .order_by(KbChunk.id)
            .limit(limit)
        )
        if scope is not None:
            query = query.where(KbDocument.scope == scope)
        async with self._reading() as db:
            return [StaleChunk(*row) for row in (await db.execute(query)).all()]

    # writes --------------------------------------------------------------------------------
    async def put_document(
        self,
        scope: str,
        name: str,
        *,
        content_hash: str,
        characters: int,
        pages: int | None,
        channel_ids: Sequence[int] | None,
        added_by: int | None,
        new_chunks: Sequence[NewChunk],
    ) -> tuple[int, list[int], int | None]:
        """Store a document with its chunks, replacing one of the same name at once.

        Returns its id, its chunks' ids in order, and the id of the document it replaced.
        """
        async with self._writing() as db:
            old = await db.scalar(
                select(KbDocument.id).where(KbDocument.scope == scope, KbDocument.name == name)
            )
            if old is not None:
                await _delete_documents(db, [old])
            document = KbDocument(
                scope=scope,
                name=name,
                channel_ids=None if channel_ids is None else list(channel_ids),
                content_hash=content_hash,
                characters=characters,
                pages=pages,
                added_by=added_by,
                created_at=utcnow(),
            )
            db.add(document)
            await db.flush()
            rows = [
                {
                    "document_id": document.id,
                    "position": position,
                    "text": item.chunk.text,
                    "page": item.chunk.page,
                    "heading": item.chunk.heading,
                    "content_hash": item.chunk.content_hash,
                    "model": item.model,
                    "embedding": item.embedding,
                }
                for position, item in enumerate(new_chunks)
            ]
            for part in _parts(rows, ROWS_PER_INSERT):
                await db.execute(insert(KbChunk), part)
            ids = await db.scalars(
                select(KbChunk.id)
                .where(KbChunk.document_id == document.id)
                .order_by(KbChunk.position)
            )
            await notify.announce(db, notify.KNOWLEDGE, [scope])
            return document.id, list(ids), old

    async def set_channels(self, document_id: int, channel_ids: Sequence[int] | None) -> None:
        value = None if channel_ids is None else list(channel_ids)
        async with self._writing() as db:
            scope = await db.scalar(
                update(KbDocument)
                .where(KbDocument.id == document_id)
                .values(channel_ids=value)
                .returning(KbDocument.scope)
            )
            if scope is not None:
                await notify.announce(db, notify.KNOWLEDGE, [scope])

    async def delete_document(self, scope: str, name: str) -> tuple[int, int] | None:
        """Delete a document, its chunks and their vectors: (its id, how many chunks it
        had), or None if there is no such document."""
        async with self._writing() as db:
            found = await db.scalar(
                select(KbDocument.id).where(KbDocument.scope == scope, KbDocument.name == name)
            )
            if found is None:
                return None
            await notify.announce(db, notify.KNOWLEDGE, [scope])
            return found, await _delete_documents(db, [found])

    async def set_embeddings(self, rows: Iterable[tuple[int, str, bytes]]) -> int:
        """(chunk id, model, vector) for chunks re-embedded; how many still existed."""
        changed = 0
        chunk_ids = []
        async with self._writing() as db:
            for chunk_id, model, blob in rows:
                result = await db.execute(
                    update(KbChunk)
                    .where(KbChunk.id == chunk_id)
                    .values(model=model, embedding=blob)
                )
                changed += int(result.rowcount or 0)
                chunk_ids.append(chunk_id)
            if notify.shared(db) and chunk_ids:
                await notify.announce(db, notify.KNOWLEDGE, await _scopes_of(db, chunk_ids))
        return changed


async def _scopes_of(db: DbSession, chunk_ids: list[int]) -> set[str]:
    """The servers these chunks belong to."""
    scopes: set[str] = set()
    for part in _parts(chunk_ids, IDS_PER_STATEMENT):
        query = (
            select(KbDocument.scope)
            .join(KbChunk, KbChunk.document_id == KbDocument.id)
            .where(KbChunk.id.in_(part))
            .distinct()
        )
        scopes.update(await db.scalars(query))
    return scopes


async def _delete_documents(db: DbSession, document_ids: list[int]) -> int:
    """Delete documents and their chunks; how many chunks went."""
    # The chunks first, not through the foreign key's cascade: a database whose connections
    # do not enforce foreign keys (SQLite without the pragma) would keep the vectors.
    result = await db.execute(delete(KbChunk).where(KbChunk.document_id.in_(document_ids)))
    await db.execute(delete(KbDocument).where(KbDocument.id.in_(document_ids)))
    return int(result.rowcount or 0)
