"""Inverted lists over a large knowledge base's vectors (an IVF index, in numpy).

Why: the exact scan reads every vector for every question: 293 MB at 100,000 x 768, about
4-5 ms of p95 per 10,000 rows on a loaded 2-core machine (``bench/retrieval.py``), so 40-
50 ms for the largest bases. Below ``EXACT_SCAN_MAX_ROWS`` rows it stays (exact answers in
about a millisecond). Above, spherical k-means groups the rows into about sqrt(rows) lists
whose rows sit together in the matrix; a search scores the centroids, scans the
``PROBE_SHARE`` of lists nearest the question plus the rows added since the lists were made
(scanned exactly), and ranks those candidates by their exact scores. That reads a tenth of
the matrix: 2-4 ms at 100,000 rows.

The price, written down: a passage whose list is not probed is missed. Text embeddings
cluster by topic, and on data shaped like them (documents, sections, passages) the bench
measures recall@5 against the exact scan; on uniformly random vectors, which have no
neighbours worth the name, recall is low, as for every approximate index. Training runs in
a worker thread on a sample (a few seconds at 100,000 rows) while searches go on exactly,
and adopting its result copies the matrix once (twice the memory for a moment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.core.embedding import VECTOR_DTYPE

# Rows up to which a plain scan is fast enough (~1-2 ms) and exact: most servers' bases.
EXACT_SCAN_MAX_ROWS = 20_000
PROBE_SHARE = 0.1  # of the lists, the nearest ones a search scans
MIN_PROBES = 8
KMEANS_ITERATIONS = 10
SAMPLE_PER_LIST = 64  # training rows per list: k-means' centroids settle well before this
ASSIGN_BATCH = 8_192  # rows scored against the centroids at once (a 10 MB block at 316 lists)
# Lists are made again once the rows added since exceed this share of the listed ones.
RETRAIN_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Clusters:
    """Lists over the first ``rows`` rows of a matrix, sorted so each list is one slice."""

    centroids: np.ndarray  # (lists, dims), unit rows
    labels: np.ndarray  # (rows,) each listed row's list, ascending
    offsets: np.ndarray  # (lists + 1,) where each list's rows start

    @classmethod
    def of(cls, centroids: np.ndarray, labels: np.ndarray) -> Clusters:
        offsets = np.searchsorted(labels, np.arange(len(centroids) + 1))
        return cls(centroids, labels, offsets)

    @property
    def rows(self) -> int:
        return len(self.labels)

    def segments(self, query: np.ndarray, size: int) -> list[tuple[int, int]]:
        """The slices of the matrix (of ``size`` live rows) a search for ``query`` scans:
        the nearest lists and the rows added after them."""
        lists = len(self.centroids)
        probes = min(lists, max(MIN_PROBES, int(np.ceil(PROBE_SHARE * lists))))
        near = self.centroids @ query
        chosen = np.argpartition(near, -probes)[-probes:] if probes < lists else range(lists)
        found = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in chosen]
        found = [(start, end) for start, end in found if end > start]
        if size > self.rows:
            found.append((self.rows, size))
        return found

    def without(self, keep: np.ndarray) -> Clusters:
        """The lists once the rows where ``keep`` (over the listed rows) is False are gone;
        the others keep their order, so each list is still one slice."""
        return Clusters.of(self.centroids, self.labels[keep])

    def stale(self, size: int) -> bool:
        """Whether so many rows were added since that the lists should be made again."""
        return size - self.rows > RETRAIN_SHARE * self.rows


def train(matrix: np.ndarray, seed: int = 0) -> tuple[Clusters, np.ndarray]:
    """Lists for ``matrix`` (unit rows) and the order that groups its rows by list:
    ``matrix[order]`` is the matrix the lists describe. CPU-heavy: run it in a thread."""
    rows = len(matrix)
    lists = max(1, round(np.sqrt(rows)))
    rng = np.random.default_rng(seed)
    sample_size = min(rows, SAMPLE_PER_LIST * lists)
    sample = matrix[np.sort(rng.choice(rows, sample_size, replace=False))]
    centroids = sample[rng.choice(sample_size, lists, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        empty = np.flatnonzero(np.bincount(nearest, minlength=lists) == 0)
        if len(empty):  # a list nobody chose starts again from a random row
            sums[empty] = sample[rng.choice(sample_size, len(empty), replace=False)]
        centroids = _unit(sums)
    labels = np.concatenate(
        [
            np.argmax(matrix[start : start + ASSIGN_BATCH] @ centroids.T, axis=1)
            for start in range(0, rows, ASSIGN_BATCH)
        ]
    )
    order = np.argsort(labels, kind="stable")
    return Clusters.of(centroids, labels[order].astype(np.int32)), order


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (rows / norms).astype(VECTOR_DTYPE, copy=False)
