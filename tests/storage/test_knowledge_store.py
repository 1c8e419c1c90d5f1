"""KnowledgeStore against a real database (SQLite; PostgreSQL with --db=postgresql):
documents with their chunks and vectors, replaced and deleted together, stale chunks by
model, embeddings shared by content hash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import func, select, text

from bot.core.errors import StorageError
from bot.core.knowledge.records import Chunk, NewChunk
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.knowledge import KnowledgeStore
from bot.storage.models import KbChunk

SCOPE = "guild:1"


def new_chunks(*texts: str, model: str = "m1", page: int | None = None) -> list[NewChunk]:
    return [
        NewChunk(Chunk(t, page, "Head", f"hash-{t}"), model, bytes([i + 1]) * 8)
        for i, t in enumerate(texts)
    ]


async def put(store: KnowledgeStore, name: str, *texts: str, scope: str = SCOPE, **kw: object):
    options: dict[str, object] = {
        "content_hash": f"doc-{name}-{'|'.join(texts)}",
        "characters": sum(map(len, texts)),
        "pages": None,
        "channel_ids": None,
        "added_by": 42,
        "new_chunks": new_chunks(*texts),
    }
    options.update(kw)
    return await store.put_document(scope, name, **options)  # type: ignore[arg-type]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[KnowledgeStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield KnowledgeStore(create_sessionmaker(engine))
    await engine.dispose()


async def chunk_rows(store: KnowledgeStore) -> int:
    async with store._sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(KbChunk)) or 0)


async def test_a_document_is_stored_with_its_chunks_in_order(store: KnowledgeStore) -> None:
    document_id, chunk_ids, replaced = await put(store, "faq.md", "one", "two", "three")
    assert replaced is None and len(chunk_ids) == 3
    [record] = await store.documents(SCOPE, "m1")
    assert (record.name, record.chunks, record.characters, record.stale) == ("faq.md", 3, 11, 0)
    assert record.added_by == 42 and isinstance(record.created_at, datetime)
    assert record.created_at.tzinfo is not None
    texts = await store.passages(chunk_ids)
    assert [texts[i].text for i in chunk_ids] == ["one", "two", "three"]
    assert [texts[i].position for i in chunk_ids] == [0, 1, 2]
    assert {texts[i].document for i in chunk_ids} == {"faq.md"}
    stored = await store.document(SCOPE, "faq.md")
    assert stored is not None and (stored.id, stored.chunks) == (document_id, 3)
    assert await store.document("guild:2", "faq.md") is None


async def test_putting_a_name_again_replaces_the_document(store: KnowledgeStore) -> None:
    first, _, _ = await put(store, "faq.md", "old one", "old two")
    _, ids, replaced = await put(store, "faq.md", "new")
    assert replaced == first  # (SQLite may give the new row the same id)
    assert await chunk_rows(store) == 1
    assert [(d.name, d.chunks) for d in await store.documents(SCOPE, "m1")] == [("faq.md", 1)]
    assert (await store.passages(ids))[ids[0]].text == "new"


async def test_deleting_a_document_deletes_its_vectors(store: KnowledgeStore) -> None:
    await put(store, "a.md", "x", "y")
    await put(store, "b.md", "z")
    assert await store.delete_document(SCOPE, "a.md") is not None
    assert await chunk_rows(store) == 1
    assert await store.delete_document(SCOPE, "a.md") is None
    vectors = await store.vectors(SCOPE, "m1")
    assert len(vectors.chunk_ids) == 1 and len(vectors.embeddings) == 8


async def test_vectors_are_those_of_one_model_and_one_server(store: KnowledgeStore) -> None:
    doc, ids, _ = await put(store, "a.md", "x", "y", channel_ids=[5, 6])
    await put(store, "b.md", "z", new_chunks=new_chunks("z", model="m2"))
    await put(store, "c.md", "w", scope="guild:2")
    vectors = await store.vectors(SCOPE, "m1")
    assert vectors.chunk_ids == tuple(ids) and vectors.document_ids == (doc, doc)
    assert vectors.embeddings == bytes([1]) * 8 + bytes([2]) * 8
    assert vectors.channels[doc] == (5, 6) and len(vectors.channels) == 2


async def test_stale_chunks_are_those_of_another_model(store: KnowledgeStore) -> None:
    await put(store, "a.md", "x", "y")
    await put(store, "b.md", "z", scope="guild:2")
    assert await store.stale_count(SCOPE, "m1") == 0
    assert await store.stale_count(SCOPE, "m2") == 2
    assert await store.stale_count(None, "m2") == 3
    stale = await store.stale_chunks(None, "m2", limit=2)
    assert [c.text for c in stale] == ["x", "y"] and stale[0].scope == SCOPE
    rest = await store.stale_chunks(None, "m2", after=stale[-1].id)
    assert [(c.text, c.scope, c.heading) for c in rest] == [("z", "guild:2", "Head")]
    assert await store.set_embeddings([(c.id, "m2", b"\0" * 8) for c in stale]) == 2
    assert await store.stale_count(None, "m2") == 1
    [record] = await store.documents(SCOPE, "m1")
    assert record.stale == 2  # for m1 they are stale now


async def test_embeddings_are_found_by_content_hash_and_model(store: KnowledgeStore) -> None:
    await put(store, "a.md", "x", "y")
    found = await store.embeddings_of(["hash-x", "hash-q"], "m1")
    assert found == {"hash-x": bytes([1]) * 8}
    assert await store.embeddings_of(["hash-x"], "m2") == {}


async def test_totals_and_channels(store: KnowledgeStore) -> None:
    doc, _, _ = await put(store, "a.md", "x", "y")
    await put(store, "b.md", "z")
    assert await store.totals(SCOPE) == (2, 3)
    assert await store.totals("guild:9") == (0, 0)
    await store.set_channels(doc, [7])
    stored = await store.document(SCOPE, "a.md")
    assert stored is not None and stored.channel_ids == (7,)


async def test_a_broken_database_is_a_storage_error(store: KnowledgeStore) -> None:
    async with store._sessionmaker() as db, db.begin():
        await db.execute(text("DROP TABLE kb_chunks"))
    with pytest.raises(StorageError):
        await store.documents(SCOPE, "m1")
    with pytest.raises(StorageError):
        await put(store, "a.md", "x")


async def test_a_vector_of_another_length_is_left_out_of_a_load(store: KnowledgeStore) -> None:
    odd = [*new_chunks("x", "y"), NewChunk(Chunk("z", None, None, "hash-z"), "m1", b"\1" * 12)]
    _, ids, _ = await put(store, "a.md", "x", "y", "z", new_chunks=odd)
    vectors = await store.vectors(SCOPE, "m1")
    assert vectors.chunk_ids == tuple(ids[:2])
    assert bytes(vectors.embeddings) == bytes([1]) * 8 + bytes([2]) * 8
