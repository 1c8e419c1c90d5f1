"""KnowledgeBase against the Ollama emulator (through a real OllamaRequestManager) and a
real SQLite store: add, search, remove; nothing embedded twice; limits; channels; the
relevance floor; a change of embedding model detected and re-embedded.

The emulator embeds a text as a bag of its words, so a question sharing distinctive words
with one passage is closest to it, and one sharing none scores about 0.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from bot.core.documents import Document
from bot.core.errors import AttachmentError, InvalidRequestError
from bot.core.knowledge.base import KnowledgeBase
from bot.core.knowledge.records import ADDED, REPLACED, UNCHANGED
from bot.storage.models import KbChunk, KbDocument
from tests.bot.core.knowledge.conftest import (
    SCOPE,
    KnowledgeFactory,
    embed_inputs,
    text_document,
)
from tests.emulators.ollama_server import OllamaEmulator

PARKING = "Visitors park their bicycles behind the greenhouse, next to the orchard gate."
DUES = "Membership dues are forty euros, paid to the treasurer every January."
MEETINGS = "The committee meets on the first Thursday of each month in the library annex."


async def add_three(kb: KnowledgeBase) -> None:
    for name, text in (("parking.txt", PARKING), ("dues.txt", DUES), ("meetings.txt", MEETINGS)):
        await kb.add(SCOPE, name, text_document(name, text))


async def chunk_count(kb: KnowledgeBase) -> int:
    async with kb.store._sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(KbChunk)) or 0)


def section(topic: str, words: str) -> str:
    """A Markdown section long enough to be a chunk of its own (over half the target
    length, so two do not share one) and short enough to be one chunk."""
    body = ""
    i = 0
    while len(body) < 650:
        body += f"{words} point {i}. "
        i += 1
    return f"## {topic}\n\n{body.strip()}\n"


async def test_a_question_finds_the_passage_sharing_its_words(kb: KnowledgeBase) -> None:
    await add_three(kb)
    passages = await kb.search(SCOPE, "Where can visitors park bicycles?", min_score=0.2)
    assert passages[0].document == "parking.txt"
    assert passages[0].text == PARKING and passages[0].page is None
    assert passages[0].score > 0.4
    assert all(p.score < passages[0].score for p in passages[1:])
    treasurer = await kb.search(SCOPE, "How much are membership dues?", k=1, min_score=0.2)
    assert [p.document for p in treasurer] == ["dues.txt"]


async def test_a_scan_in_a_worker_thread_finds_the_same(make_knowledge: KnowledgeFactory) -> None:
    inline = await make_knowledge()
    await add_three(inline)
    threaded = await make_knowledge(thread_rows=0)  # every scan in a thread
    for kb in (inline, threaded):
        found = await kb.search(SCOPE, "membership dues treasurer", min_score=-1)
        assert [p.document for p in found][:1] == ["dues.txt"] and len(found) == 3


async def test_a_large_base_gets_inverted_lists_in_the_background(
    make_knowledge: KnowledgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    kb = await make_knowledge(exact_max_rows=2)  # three passages are "large" here
    caplog.set_level(logging.INFO, logger="bot.core.knowledge.lists")
    await kb.preload(SCOPE)  # an index in memory, which adding documents grows
    await add_three(kb)
    await kb.clustered(SCOPE)
    assert "guild:1: 3 vectors in 2 lists" in caplog.text
    [found] = await kb.search(SCOPE, "membership dues treasurer", k=1)
    assert found.document == "dues.txt"
    restarted = await make_knowledge(exact_max_rows=2)  # lists made again after a load
    caplog.clear()
    assert (await restarted.search(SCOPE, "visitors park bicycles"))[0].document == "parking.txt"
    await restarted.clustered(SCOPE)
    assert "3 vectors in 2 lists" in caplog.text
    await restarted.remove(SCOPE, "parking.txt")  # two left: an exact scan again
    assert await restarted.search(SCOPE, "visitors park bicycles") == []
    await kb.close()
    await restarted.close()


async def test_the_floor_keeps_unrelated_passages_out(kb: KnowledgeBase) -> None:
    await add_three(kb)
    assert await kb.search(SCOPE, "quantum chromodynamics lecture notes") == []  # 0.5 floor
    everything = await kb.search(SCOPE, "quantum chromodynamics lecture notes", min_score=-1)
    assert len(everything) == 3
    assert all(abs(p.score) < 0.3 for p in everything)


async def test_a_server_without_documents_costs_no_embedding(
    kb: KnowledgeBase, ollama_emu: OllamaEmulator
) -> None:
    await add_three(kb)
    assert await kb.search("guild:2", "visitors park bicycles") == []
    calls = len(embed_inputs(ollama_emu))
    assert await kb.search("guild:3", "visitors park bicycles") == []
    assert len(embed_inputs(ollama_emu)) == calls


async def test_search_after_a_restart_reads_the_vectors_back(
    make_knowledge: KnowledgeFactory,
) -> None:
    first = await make_knowledge()
    assert await first.search(SCOPE, "visitors park bicycles") == []  # index loaded, empty
    await add_three(first)  # ... and updated as documents come
    assert (await first.search(SCOPE, "visitors park bicycles"))[0].document == "parking.txt"
    again = await make_knowledge()
    [found] = await again.search(SCOPE, "visitors park bicycles", k=1)
    assert found.document == "parking.txt"


async def test_remove_deletes_the_chunks_and_their_vectors(kb: KnowledgeBase) -> None:
    await add_three(kb)
    assert await kb.search(SCOPE, "visitors park bicycles")
    assert await kb.remove(SCOPE, "parking.txt") == 1
    assert await kb.search(SCOPE, "visitors park bicycles") == []
    assert await chunk_count(kb) == 2
    async with kb.store._sessionmaker() as db:
        names = set(await db.scalars(select(KbDocument.name)))
    assert names == {"dues.txt", "meetings.txt"}
    with pytest.raises(InvalidRequestError, match=r"no document named `parking\.txt`"):
        await kb.remove(SCOPE, "parking.txt")
    assert [d.name for d in await kb.list(SCOPE)] == ["dues.txt", "meetings.txt"]


async def test_identical_content_is_never_embedded_twice(
    kb: KnowledgeBase, ollama_emu: OllamaEmulator
) -> None:
    text = section("Parking", "visitors park bicycles") + section("Dues", "members pay euros")
    added = await kb.add(SCOPE, "guide.md", text_document("guide.md", text))
    assert (added.status, added.chunks, added.embedded) == (ADDED, 2, 2)
    sent = len(embed_inputs(ollama_emu))
    again = await kb.add(SCOPE, "guide.md", text_document("guide.md", text))
    assert (again.status, again.chunks, again.embedded) == (UNCHANGED, 2, 0)
    copy = await kb.add(SCOPE, "copy.md", text_document("copy.md", text))
    assert (copy.status, copy.embedded) == (ADDED, 0)  # other name, same passages
    assert len(embed_inputs(ollama_emu)) == sent  # no /api/embed call at all
    assert await chunk_count(kb) == 4
    changed = text + section("Meetings", "committee meets thursday")
    replaced = await kb.add(SCOPE, "guide.md", text_document("guide.md", changed))
    assert (replaced.status, replaced.chunks, replaced.embedded) == (REPLACED, 3, 1)
    [new_text] = embed_inputs(ollama_emu)[sent:]
    assert "committee meets thursday" in new_text and "Meetings" in new_text
    assert await chunk_count(kb) == 5
    [found] = await kb.search(SCOPE, "when does the committee meet on thursday", k=1)
    assert found.document == "guide.md" and found.heading == "Meetings"


async def test_progress_follows_the_chunks(kb: KnowledgeBase) -> None:
    text = "\n\n".join(section(f"Topic {i}", f"distinct{i} words") for i in range(5))
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    added = await kb.add(SCOPE, "topics.md", text_document("topics.md", text), progress=progress)
    assert seen[0] == (0, added.chunks) and seen[-1] == (added.chunks, added.chunks)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    def failing(done: int, total: int) -> None:
        raise RuntimeError("the message could not be edited")

    other = text_document("other.md", section("Other", "unrelated lines"))
    assert (await kb.add(SCOPE, "other.md", other, progress=failing)).status == ADDED


async def test_documents_limited_to_channels(kb: KnowledgeBase) -> None:
    await kb.add(SCOPE, "parking.txt", text_document("p.txt", PARKING), channel_ids=[100, 101])
    await kb.add(SCOPE, "dues.txt", text_document("d.txt", DUES))
    query = "visitors park bicycles"
    assert (await kb.search(SCOPE, query, channel_id=100))[0].document == "parking.txt"
    assert await kb.search(SCOPE, query, channel_id=200) == []
    assert (await kb.search(SCOPE, query))[0].document == "parking.txt"
    # The same content with other channels: nothing embedded, the channels change.
    again = await kb.add(SCOPE, "parking.txt", text_document("p.txt", PARKING), channel_ids=[200])
    assert again.status == UNCHANGED
    assert (await kb.search(SCOPE, query, channel_id=200))[0].document == "parking.txt"
    assert await kb.search(SCOPE, query, channel_id=100) == []
    [record] = [d for d in await kb.list(SCOPE) if d.name == "parking.txt"]
    assert record.channel_ids == (200,)


async def test_a_pdf_passage_knows_its_page(kb: KnowledgeBase) -> None:
    pages = ("Welcome to the handbook.", "Visitors park bicycles behind the greenhouse.", "Dues.")
    pdf = Document("handbook.pdf", "pdf", "", "\n\n".join(pages), pages)
    added = await kb.add(SCOPE, "handbook.pdf", pdf)
    assert (added.pages, added.chunks) == (3, 3)
    [found] = await kb.search(SCOPE, "where do visitors park bicycles", k=1)
    assert (found.document, found.page) == ("handbook.pdf", 2)
    sources = kb.sources_for([found])
    assert sources.labels == ("handbook.pdf p. 2",)
    assert sources.texts[0].startswith("From handbook.pdf p. 2:\n")
    assert pages[1] in sources.texts[0]


async def test_a_change_of_embedding_model_is_detected_and_reembedded(
    make_knowledge: KnowledgeFactory, ollama_emu: OllamaEmulator
) -> None:
    nomic = await make_knowledge()
    await add_three(nomic)
    mxbai = await make_knowledge(embedding_model="mxbai-embed-large")
    assert await mxbai.stale(SCOPE) == 3 and await nomic.stale(SCOPE) == 0
    assert {d.stale for d in await mxbai.list(SCOPE)} == {1}
    # Never mixed: the other model's vectors are not searched at all.
    assert await mxbai.search(SCOPE, "visitors park bicycles", min_score=-1) == []
    steps: list[tuple[int, int]] = []
    assert await mxbai.reembed(SCOPE, progress=lambda d, t: steps.append((d, t))) == 3
    assert steps[-1] == (3, 3)
    last = [r for r in ollama_emu.requests if r.path == "/api/embed"][-1].json or {}
    assert last["model"] == "mxbai-embed-large" and len(last["input"]) == 3
    assert await mxbai.stale(SCOPE) == 0 and await nomic.stale(SCOPE) == 3
    [found] = await mxbai.search(SCOPE, "visitors park bicycles", k=1)
    assert found.document == "parking.txt"
    assert await mxbai.reembed() == 0


async def test_size_limits_are_explained(make_knowledge: KnowledgeFactory) -> None:
    kb = await make_knowledge(max_documents=2, max_chunks=3)
    await kb.add(SCOPE, "parking.txt", text_document("p.txt", PARKING))
    await kb.add(SCOPE, "dues.txt", text_document("d.txt", DUES))
    with pytest.raises(InvalidRequestError, match="already has 2 documents"):
        await kb.add(SCOPE, "meetings.txt", text_document("m.txt", MEETINGS))
    # Replacing a document is not adding one; the chunks that go make room.
    long = text_document("p.md", section("One", "alpha") + section("Two", "beta"))
    assert (await kb.add(SCOPE, "parking.txt", long)).status == REPLACED
    longer = text_document("d.md", section("A", "gamma") + section("B", "delta"))
    with pytest.raises(InvalidRequestError, match=r"makes 2 passages.*has 2 of at most 3"):
        await kb.add(SCOPE, "dues.txt", longer)


async def test_bad_names_queries_and_documents_are_refused(kb: KnowledgeBase) -> None:
    doc = text_document("p.txt", PARKING)
    with pytest.raises(InvalidRequestError, match="needs a name"):
        await kb.add(SCOPE, "   ", doc)
    with pytest.raises(InvalidRequestError, match="at most 200 characters"):
        await kb.add(SCOPE, "n" * 201, doc)
    with pytest.raises(InvalidRequestError, match="what to search for"):
        await kb.search(SCOPE, "  ")
    with pytest.raises(InvalidRequestError, match="1 to 50 passages"):
        await kb.search(SCOPE, "park", k=0)
    huge = Document("huge.txt", "text", "", "word " * 250_000)
    with pytest.raises(AttachmentError, match="at most 1,000,000"):
        await kb.add(SCOPE, "huge.txt", huge)
    assert await kb.list(SCOPE) == []
