"""Retrieval from a knowledge base: searching the index, its memory, loading it from the
database, ingesting documents, and the time retrieval adds before an answer's first token.

1. index (``bench/retrieval_index.py``): ``--passages`` vectors of ``--dims`` dimensions in
   a VectorIndex (one server's), topical ones (shaped like text embeddings) and random
   ones; top-5 of ``--queries`` questions, p50 / p95, by the exact scan and by inverted
   lists, their recall, also with a tenth of the documents limited to another channel; the
   memory; the exact scan in float16, for scale.
2. load: the topical vectors stored through KnowledgeStore in SQLite (documents of 1,000
   chunks of ``--text-chars`` characters), read into a KnowledgeBase's index (``preload``,
   as the first search after a start does) and its lists made, ``--load-reps`` times.
3. ingestion: ``--docs`` generated Markdown handbooks (headings, prose, code blocks) of
   ~40,000 characters and a 2,000-row CSV through KnowledgeBase.add, with the request
   manager's Embedder against the Ollama emulator (a child process, instant; its
   nomic-embed-text a bag of words, 768 dimensions); then the same again (unchanged: no
   embedding) and under other names in another server (vectors reused). Chunks per second.
4. first token: ``--answers`` questions per kind, shuffled, through the manager (no
   session): "plain" asks; "retrieval" first searches a server's knowledge base (embedding
   the question, the scan, reading the passages), then asks with them as sources; for the
   ingested server and the one of ``--passages``. Query -> the first chunk of text.

    .venv/bin/python -m bench.retrieval [--passages 100000] [--dims 768] [--queries 300]
        [--text-chars 900] [--load-reps 3] [--docs 20] [--answers 40]
"""

# ruff: noqa: E402 - the BLAS threads are set before numpy is imported
from __future__ import annotations

from bot.ops.process import limit_blas_threads

# One BLAS thread, as the bot runs (before numpy loads); OPENBLAS_NUM_THREADS=2 overrides.
limit_blas_threads()

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrieval_index import (
    CHUNKS_PER_DOCUMENT,
    LIMITED_CHANNEL,
    Topics,
    bench_index,
    fail,
    mb,
    ms,
    rss,
    unit_rows,
)
from bench.streaming_child import EmulatorControl
from bench.tool_rounds import child_process, serve_commands
from bot import OllamaRequestManager
from bot.core.documents import Document
from bot.core.embedding import to_blob
from bot.core.knowledge.base import KnowledgeBase
from bot.core.knowledge.chunking import chunk_document, content_hash
from bot.core.knowledge.records import Chunk, NewChunk
from bot.storage import create_sessionmaker
from bot.storage.knowledge import KnowledgeStore

MODEL = "llama3.2"
EMBEDDING_MODEL = "nomic-embed-text"
K = 5
BIG, DOCS = "guild:1", "guild:2"
# (label, server, suffix of the names): new documents, the same again, copies elsewhere
INGESTION_ROUNDS = (("new", DOCS, ""), ("again, unchanged", DOCS, ""),
                    ("other names, other server", "guild:3", "-copy"))  # fmt: skip
_VOCABULARY_TEXT = (
    "garden greenhouse orchard bicycle treasurer committee library annex harvest compost "
    "volunteer schedule rota ladder shed irrigation seedling tomato beehive honey market "
    "invoice budget meeting agenda minutes election charter insurance permit parking gate"
)
_VOCABULARY = _VOCABULARY_TEXT.split()


# -- the child: the Ollama emulator ---------------------------------------------------------
def _serve(conn: Connection) -> None:
    from tests.emulators.ollama_server import OllamaEmulator

    async def main() -> None:
        emu = OllamaEmulator(tokens_per_second=None, load_delay=0.0)
        emu.set_reply("An answer from the sources [1].")
        await emu.start()
        conn.send(emu.url)

        async def handle(command: str) -> Any:
            if command == "embeds":  # (/api/embed requests, texts embedded) so far
                embeds = [r for r in emu.requests if r.path == "/api/embed"]
                return len(embeds), sum(len((r.json or {}).get("input") or []) for r in embeds)
            if command == "last_question":
                chat = [r for r in emu.requests if r.path == "/api/chat"][-1]
                return str(chat.messages[-1].get("content"))
            raise ValueError(f"unknown command {command!r}")

        try:
            await serve_commands(conn, handle)
        finally:
            await emu.stop()

    asyncio.run(main())


# -- 2. loading from the database ---------------------------------------------------------------
async def store_vectors(store: KnowledgeStore, vectors: np.ndarray, text_chars: int) -> float:
    filler = ("lorem ipsum dolor sit amet " * (text_chars // 27 + 1))[:text_chars]
    start = time.perf_counter()
    n = len(vectors)
    for first in range(0, n, CHUNKS_PER_DOCUMENT):
        rows = range(first, min(n, first + CHUNKS_PER_DOCUMENT))
        document = first // CHUNKS_PER_DOCUMENT
        new = [
            NewChunk(Chunk(f"{i} {filler}", None, None, content_hash(str(i))), EMBEDDING_MODEL,
                     to_blob(vectors[i]))
            for i in rows
        ]  # fmt: skip
        channels = [LIMITED_CHANNEL] if document % 10 == 1 else None
        about: dict[str, Any] = {"characters": text_chars, "pages": None, "added_by": None}
        name = f"doc-{document:04d}.md"
        await store.put_document(
            BIG, name, content_hash=name, channel_ids=channels, new_chunks=new, **about
        )
    return time.perf_counter() - start


async def bench_load(
    store: KnowledgeStore, manager: OllamaRequestManager, n: int, written: float, reps: int
) -> KnowledgeBase:
    times: list[float] = []
    listing: list[float] = []
    grown: list[int] = []
    for _ in range(reps):
        kb = None  # the previous index is freed before measuring
        gc.collect()
        before = rss()
        kb = KnowledgeBase(store, manager.embedder)
        start = time.perf_counter()
        loaded = await kb.preload(BIG)
        times.append(time.perf_counter() - start)
        await kb.clustered(BIG)  # the lists, made in a worker thread after the load
        listing.append(time.perf_counter() - start - times[-1])
        grown.append(rss() - before)
        if loaded != n:
            fail(f"loaded {loaded} vectors of {n}")
    print(
        f"\n2. load: {n:,} passages written in {written:.1f} s; read into the index "
        f"(preload) in {statistics.median(times):.2f} s median of {reps} "
        f"({', '.join(f'{t:.2f}' for t in times)}); lists made in "
        f"{statistics.median(listing):.2f} s more; RSS +{mb(statistics.median(grown))}"
    )
    return kb


# -- 3. ingestion -------------------------------------------------------------------------------
def markdown_document(number: int, rng: random.Random, size: int = 40_000) -> Document:
    own = f"topic{number}"
    parts = [f"# Handbook {number}\n"]
    length = 0
    while length < size:
        section = len(parts)
        parts.append(f"\n## Section {section} of {own}\n")
        for _ in range(rng.randint(2, 6)):
            words = [rng.choice(_VOCABULARY) for _ in range(rng.randint(40, 120))]
            words[rng.randrange(len(words))] = own
            parts.append("\n" + " ".join(words).capitalize() + ".\n")
        if rng.random() < 0.3:
            lines = [f"    step_{i} = run('{rng.choice(_VOCABULARY)}')" for i in range(8)]
            parts.append(
                "\n```python\ndef section_" + str(section) + "():\n" + "\n".join(lines) + "\n```\n"
            )
        length = sum(map(len, parts))
    return Document(f"handbook-{number}.md", "markdown", "md", "".join(parts))


def csv_document(rng: random.Random, rows: int = 2000) -> Document:
    lines = ["name,role,plot,joined"]
    lines += [f"member{i},{rng.choice(_VOCABULARY)},{i % 97},20{10 + i % 15}" for i in range(rows)]
    return Document("members.csv", "csv", "csv", "\n".join(lines) + "\n")


async def bench_ingestion(kb: KnowledgeBase, ctl: EmulatorControl, docs: int) -> None:
    rng = random.Random(11)
    documents = [markdown_document(i, rng) for i in range(docs)] + [csv_document(rng)]
    characters = sum(d.characters for d in documents)
    start = time.process_time()
    expected = sum(len(chunk_document(d)) for d in documents)
    chunking = time.process_time() - start
    rounds: list[tuple[str, float, int, int]] = []
    for label, scope, suffix in INGESTION_ROUNDS:
        calls0, texts0 = await ctl.call("embeds")
        start = time.perf_counter()
        chunks = 0
        for document in documents:
            added = await kb.add(scope, document.filename + suffix, document)
            chunks += added.chunks
        wall = time.perf_counter() - start
        calls, texts = await ctl.call("embeds")
        rounds.append((label, wall, calls - calls0, texts - texts0))
        if chunks != expected:
            fail(f"{chunks} chunks stored, {expected} made")
    if rounds[0][3] == 0 or rounds[1][3] or rounds[2][3]:
        fail(f"embedding calls {[r[2:] for r in rounds]}: only the first round embeds")
    for number in (0, docs - 1):
        found = await kb.search(DOCS, f"topic{number} garden", k=1, min_score=0)
        if not found or found[0].document != f"handbook-{number}.md":
            fail(f"topic{number} not found first in its handbook: {found[:1]}")
    print(
        f"\n3. ingestion: {len(documents)} documents, {characters:,} characters, "
        f"{expected:,} chunks (chunking alone: {chunking:.2f} s CPU)"
    )
    for label, wall, calls, texts in rounds:
        rates = f"{expected / wall:8,.0f} chunks/s  {characters / wall / 1000:7,.0f} k chars/s"
        print(f"   {label:<28}{wall:7.2f} s  {rates}  /api/embed: {calls} calls, {texts} texts")


# -- 4. before the first token ------------------------------------------------------------------
async def first_token(
    manager: OllamaRequestManager, question: str, sources: list[str] | None
) -> float:
    start = time.perf_counter()
    stream = await manager.query(prompt=question, stream=True, model=MODEL, sources=sources)
    first = None
    async for _ in stream:
        first = first or time.perf_counter()
    assert first is not None
    return first - start


async def bench_first_token(
    kb: KnowledgeBase,
    manager: OllamaRequestManager,
    ctl: EmulatorControl,
    answers: int,
    big: bool,
) -> None:
    questions = [
        f"What does the handbook say about topic{i % 5} and the {w}?"
        for i, w in enumerate(_VOCABULARY)
    ]
    kinds = ["plain", f"retrieval, {DOCS}"] + ([f"retrieval, {BIG}"] if big else [])
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    search: dict[str, list[float]] = {kind: [] for kind in kinds[1:]}
    embed_only: list[float] = []

    async def once(kind: str, question: str) -> None:
        if kind == "plain":
            results[kind].append(await first_token(manager, question, None))
            return
        scope = DOCS if DOCS in kind else BIG
        start = time.perf_counter()
        # No floor: the emulator's bag of words scores generated prose low, and the big
        # server's vectors are random; the best passages go into the question all the same.
        passages = await kb.search(scope, question, min_score=-1.0)
        sources = list(kb.sources_for(passages).texts)
        searched = time.perf_counter() - start
        rest = await first_token(manager, question, sources)
        search[kind].append(searched)
        results[kind].append(searched + rest)
        if not passages:
            fail(f"no passage for {question!r} in {scope}")

    for _ in range(3):  # warm-up: connections, the model's /api/show
        for kind in kinds:
            await once(kind, questions[0])
    if "Sources:" not in await ctl.call("last_question"):
        fail("the model's question carries no sources")
    gc.collect()
    gc.freeze()
    for i in range(answers):
        random.shuffle(kinds)
        for kind in kinds:
            await once(kind, questions[i % len(questions)])
        start = time.perf_counter()
        await manager.embedder.embed([questions[i % len(questions)]])
        embed_only.append(time.perf_counter() - start)
    base = statistics.median(results["plain"])
    print(f"\n4. before the first token: {answers} questions per kind, p50 / p95 ms")
    print(f"   {'kind':<24}{'first token':>16}{'search':>16}{'added (median)':>16}{'ratio':>8}")
    for kind in sorted(results):
        found, median = (
            ms(search[kind]) if kind in search else "-",
            statistics.median(results[kind]),
        )
        added = f"{(median - base) * 1000:.2f}"
        print(f"   {kind:<24}{ms(results[kind]):>16}{found:>16}{added:>16}{median / base:>8.2f}")
    print(f"   embedding the question alone: {ms(embed_only)}")


async def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(5)
    topics = Topics(rng, args.passages, args.dims)
    vectors = topics.passages(args.passages)
    bench_index(vectors, topics.questions(args.queries, args.passages), "topical")
    noise = unit_rows(rng, args.passages, args.dims)
    print()
    bench_index(noise, unit_rows(rng, args.queries, args.dims), "random")
    del noise
    with child_process(_serve) as ctl, tempfile.TemporaryDirectory() as tmp:
        manager = OllamaRequestManager(
            host=ctl.setup,
            default_model=MODEL,
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
            embedding_model=EMBEDDING_MODEL,
        )
        await manager.start()
        try:
            engine = manager.services.engine
            assert engine is not None
            store = KnowledgeStore(create_sessionmaker(engine))
            written = await store_vectors(store, vectors, args.text_chars)
            del vectors
            kb = await bench_load(store, manager, args.passages, written, args.load_reps)
            await bench_ingestion(kb, ctl, args.docs)
            # The emulator's nomic-embed-text makes 768 dimensions: questions can search the
            # random vectors only if they have as many.
            await bench_first_token(kb, manager, ctl, args.answers, big=args.dims == 768)
        finally:
            await manager.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--queries", type=int, default=300, help="searches timed in part 1")
    parser.add_argument("--text-chars", type=int, default=900, help="each stored passage's")
    parser.add_argument("--load-reps", type=int, default=3)
    parser.add_argument("--docs", type=int, default=20, help="Markdown documents ingested")
    parser.add_argument("--answers", type=int, default=40, help="questions per kind, part 4")
    args = parser.parse_args()
    if min(args.passages, args.queries) < 10 or min(args.docs, args.answers, args.load_reps) < 1:
        parser.error("too small to measure anything")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
