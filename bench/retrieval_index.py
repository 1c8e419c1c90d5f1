"""Part 1 of ``bench.retrieval``: searching one server's index in memory.

Two kinds of vectors, ``--passages`` of ``--dims`` dimensions:

- **topical**, shaped like text embeddings: documents of 1,000 passages, each about its
  topic, in sections of 20 about a subtopic, with a direction every text shares (unrelated
  passages score about 0.3, as with nomic-embed-text) and each passage's own noise;
  questions are new samples of a random section, noisier than the passages;
- **random**: uniform unit vectors and questions, with no neighbours worth the name (every
  approximate index's worst case).

For each: the exact scan (every row), then the inverted lists (made as the bot makes them,
timed), top-5 p50 / p95 over ``--queries`` questions, recall@5 against the exact scan, and
the same with a tenth of the documents limited to a channel the question is not in. Memory:
RSS before and after the index is built, and the arrays' bytes. For scale, the exact scan in
float16. Checked: the exact top 5 equals a full sort, a stored row finds itself, a limited
passage is never found elsewhere, and the lists' recall on topical vectors is at least 0.9.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.streaming_analysis import percentile
from bot.core.knowledge.index import VectorIndex

K = 5
CHUNKS_PER_DOCUMENT = 1000
SECTION = 20  # passages per section of a document
# The big server's documents 1, 11, 21... (a tenth; a small run has one) are limited to it.
LIMITED_CHANNEL = 7
ELSEWHERE = 999
MIN_TOPICAL_RECALL = 0.9
# Shares of a topical vector's energy: the direction every text shares, the document's
# topic, the section's subtopic, the passage's own words. Questions are noisier.
PASSAGE_MIX = (0.3, 0.2, 0.15, 0.35)
QUESTION_MIX = (0.3, 0.15, 0.1, 0.45)


def unit_rows(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    rows = rng.standard_normal((n, dims), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


class Topics:
    """Topical vectors: ``passages(n)`` in document order, ``questions(n)`` about them."""

    def __init__(self, rng: np.random.Generator, n: int, dims: int) -> None:
        self.rng, self.dims = rng, dims
        self.documents = max(1, -(-n // CHUNKS_PER_DOCUMENT))
        self.sections = CHUNKS_PER_DOCUMENT // SECTION
        self.shared = unit_rows(rng, 1, dims)[0]
        self.topics = unit_rows(rng, self.documents, dims)
        self.subtopics = unit_rows(rng, self.documents * self.sections, dims)

    def passages(self, n: int) -> np.ndarray:
        rows = np.arange(n)
        return self._mix(rows // CHUNKS_PER_DOCUMENT, rows // SECTION, PASSAGE_MIX)

    def questions(self, n: int, passages: int) -> np.ndarray:
        sections = self.rng.integers(0, max(1, passages // SECTION), n)
        return self._mix(sections * SECTION // CHUNKS_PER_DOCUMENT, sections, QUESTION_MIX)

    def _mix(self, documents: np.ndarray, sections: np.ndarray, mix: tuple[float, ...]) -> Any:
        out = np.empty((len(documents), self.dims), dtype=np.float32)
        for start in range(0, len(out), 10_000):  # in blocks: no 1 GB temporaries
            part = slice(start, start + 10_000)
            noise = unit_rows(self.rng, len(out[part]), self.dims)
            block = (
                np.sqrt(mix[0]) * self.shared
                + np.sqrt(mix[1]) * self.topics[documents[part]]
                + np.sqrt(mix[2]) * self.subtopics[sections[part]]
                + np.sqrt(mix[3]) * noise
            )
            out[part] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} / {percentile(values, 95) * 1000:.2f}"


def mb(size: float) -> str:
    return f"{size / 2**20:.1f} MB"


def seconds(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def fail(message: str) -> None:
    raise SystemExit(f"wrong result: {message}")


def rss() -> int:
    """This process's resident memory in bytes (Linux's /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_index(vectors: np.ndarray, asked: np.ndarray, kind: str) -> None:
    n, dims = vectors.shape
    documents = np.arange(n) // CHUNKS_PER_DOCUMENT
    limited = {int(d): [LIMITED_CHANNEL] for d in np.unique(documents) if d % 10 == 1}
    channels = {int(d): limited.get(int(d)) for d in np.unique(documents)}
    gc.collect()
    before = rss()
    index = VectorIndex("nomic-embed-text", exact_max_rows=n)  # the exact scan first
    # A copy: load() adopts its array, and the bench's own must stay apart from it.
    index.load(range(n), documents.tolist(), vectors.copy(), channels)
    grown = rss() - before
    for query in asked[:5]:
        expected = np.argsort(-(vectors @ query), kind="stable")[:K].tolist()
        if [h.chunk_id for h in index.search(query, K)] != expected:
            fail("the exact top 5 differs from a full sort")
    exact_top = [[h.chunk_id for h in index.search(q, K)] for q in asked]
    exact = [seconds(lambda q=q: index.search(q, K)) for q in asked]
    exact_limited = [seconds(lambda q=q: index.search(q, K, channel_id=ELSEWHERE)) for q in asked]
    index.exact_max_rows = 0  # now lists, as the bot makes them past EXACT_SCAN_MAX_ROWS
    gc.collect()
    before_lists = rss()
    start = time.perf_counter()
    if not index.adopt(index.clustering()()):
        fail("the lists were not adopted")
    making = time.perf_counter() - start
    lists_grown = rss() - before_lists
    found = [[h.chunk_id for h in index.search(q, K)] for q in asked]
    pairs = zip(found, exact_top, strict=True)
    recall = float(np.mean([len(set(f) & set(e)) / K for f, e in pairs]))
    listed = [seconds(lambda q=q: index.search(q, K)) for q in asked]
    listed_limited = [seconds(lambda q=q: index.search(q, K, channel_id=ELSEWHERE)) for q in asked]
    _check(index, vectors, limited, kind, recall)
    clusters = index.snapshot().clusters
    assert clusters is not None
    sizes = np.diff(clusters.offsets)
    print(f"1. index, {kind}: {n:,} passages x {dims} dimensions (float32), top-{K}, "
          f"{len(asked)} queries")  # fmt: skip
    print(f"   exact scan p50 / p95 ms:              {ms(exact)}")
    print(f"   ... a tenth of documents limited:     {ms(exact_limited)}")
    print(f"   inverted lists p50 / p95 ms:          {ms(listed)}   (target p95 <= 20 ms)")
    print(f"   ... a tenth of documents limited:     {ms(listed_limited)}")
    print(f"   recall@{K} of the lists against the exact scan: {recall:.3f}")
    median = int(np.median(sizes))
    print(f"   lists: {len(sizes)} of {sizes.min()}-{sizes.max()} rows (median {median}), "
          f"made in {making:.2f} s, RSS +{mb(lists_grown)} after")  # fmt: skip
    print(f"   matrix {mb(n * dims * 4)}; index arrays {mb(index.nbytes)}; RSS +{mb(grown)} "
          f"for the exact index")  # fmt: skip
    print(f"   exact p95 per 10,000 passages: {percentile(exact, 95) * 1000 / (n / 10_000):.2f} ms")
    half = vectors.astype(np.float16)
    f16 = [seconds(lambda q=q: half @ q.astype(np.float16)) for q in asked[:10]]
    print(f"   float16 exact scan, for scale ({mb(half.nbytes)}): {ms(f16)} ms, "
          f"{statistics.median(f16) / statistics.median(exact):.1f}x float32's median")  # fmt: skip


def _check(
    index: VectorIndex, vectors: np.ndarray, limited: dict[int, list[int]], kind: str, recall: float
) -> None:
    rng = np.random.default_rng(3)
    for row in rng.choice(len(vectors), size=min(5, len(vectors)), replace=False):
        if index.search(vectors[row], 1)[0].chunk_id != row:
            fail(f"row {row} is not its own best match")
    row = CHUNKS_PER_DOCUMENT + 1  # in document 1, limited to LIMITED_CHANNEL
    if len(vectors) > row:
        if index.search(vectors[row], 1, channel_id=LIMITED_CHANNEL)[0].chunk_id != row:
            fail("a channel-limited passage is not found in its channel")
        hits = index.search(vectors[row], K, channel_id=ELSEWHERE)
        if any(h.document_id in limited for h in hits):
            fail("a channel-limited document was found elsewhere")
    if kind == "topical" and recall < MIN_TOPICAL_RECALL:
        fail(f"recall@{K} {recall:.3f} on topical vectors")
