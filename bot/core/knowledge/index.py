"""The vectors of a server's knowledge base in memory, searched with numpy.

Why this design:

- **The database holds the truth** (``kb_chunks.embedding``: float32 little-endian blobs,
  with the model that made each). Plain blobs work the same on SQLite and PostgreSQL, need
  no extension (``sqlite-vec`` is a native library per platform; ``pgvector`` needs the
  server's administrator), and survive a restart; deleting a document's rows deletes its
  vectors.
- **Searching is a scan in memory**: a matrix per server, loaded on first use and updated
  as documents come and go. Rows are unit vectors, so ``matrix @ query`` is every cosine
  similarity at once, and ``argpartition`` picks the best k without sorting the rest. Up to
  ``EXACT_SCAN_MAX_ROWS`` (20,000) rows, most servers' bases, the scan covers every row and
  is exact, in about a millisecond. It is memory-bound and linear (about 4-5 ms of p95 per
  10,000 rows of 768 dimensions on a loaded 2-core VM, ``bench/retrieval.py``), so larger
  bases get inverted lists (``clusters``: k-means in a worker thread) and a search scans
  the tenth of the rows nearest the question: 2-4 ms at 100,000 rows, at the cost of a
  passage in a list not probed being missed (recall measured by the bench). pgvector's and
  HNSW's indexes make the same trade; this one needs no extension and no extra memory
  beyond the centroids.
- **Memory is the matrix**: rows x dimensions x 4 bytes, 293 MB for 100,000 chunks of 768
  dimensions (nomic-embed-text), 3 MB per 1,000. float16 would halve it, but numpy has no
  float16 matrix product: the bench measured the scan 13-29x slower, so the matrix stays
  float32.
- **One model per search**: only vectors of the current EMBEDDING_MODEL are loaded; the
  others are stale until re-embedded, never compared with the question's vector.
- **Channels**: a document limited to channels is masked out of searches elsewhere.

The matrix grows in place (capacity doubles), so adding a document copies only its rows;
removing one builds new arrays, so a search of a snapshot in a worker thread stays consistent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

import numpy as np

from bot.core.embedding import VECTOR_DTYPE
from bot.core.knowledge.clusters import EXACT_SCAN_MAX_ROWS, Clusters, train

log = logging.getLogger(__name__)

INITIAL_CAPACITY = 256  # rows: a small base costs kilobytes until it grows


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    document_id: int
    score: float


@dataclass(frozen=True, slots=True)
class Clustered:
    """An index's rows grouped by the lists made for them (``VectorIndex.clustering``)."""

    version: int
    clusters: Clusters
    matrix: np.ndarray
    chunk_ids: np.ndarray
    document_ids: np.ndarray


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The rows of an index at one moment: safe to search in a worker thread while the
    index changes (changes never write into the rows a snapshot holds)."""

    matrix: np.ndarray  # (rows, dims): the live rows
    chunk_ids: np.ndarray
    document_ids: np.ndarray
    channels: Mapping[int, frozenset[int] | None]
    clusters: Clusters | None = None  # inverted lists over the first rows, if large

    def search(
        self, query: np.ndarray, k: int, *, channel_id: int | None = None, min_score: float = -1.0
    ) -> list[Hit]:
        """The ``k`` rows most similar to ``query`` (a unit vector), best first, scoring at
        least ``min_score``; with ``channel_id``, only documents allowed in that channel."""
        if k <= 0 or not len(self.chunk_ids):
            return []
        if query.shape != (self.matrix.shape[1],):
            raise ValueError(f"a query of shape {query.shape} for {self.matrix.shape[1]} dims")
        query = query.astype(VECTOR_DTYPE, copy=False)
        rows: np.ndarray | None = None  # the candidates' rows; None: every row
        if self.clusters is not None:
            segments = self.clusters.segments(query, len(self.chunk_ids))
            scores = np.concatenate([self.matrix[start:end] @ query for start, end in segments])
            rows = np.concatenate([np.arange(start, end) for start, end in segments])
        else:
            scores = self.matrix @ query
        hidden = self._hidden(channel_id)
        if hidden is not None:
            scores[hidden[self.document_ids if rows is None else self.document_ids[rows]]] = -np.inf
        if rows is not None and np.count_nonzero(scores > -np.inf) < k:
            # Too few candidates in the lists probed (most hidden from this channel): the
            # exact scan finds whatever there is.
            return replace(self, clusters=None).search(
                query, k, channel_id=channel_id, min_score=min_score
            )
        k = min(k, len(scores))
        best = np.argpartition(scores, -k)[-k:] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        found = best if rows is None else rows[best]
        return [
            Hit(int(self.chunk_ids[row]), int(self.document_ids[row]), float(scores[i]))
            for i, row in zip(best, found, strict=True)
            if scores[i] >= min_score
        ]

    def _hidden(self, channel_id: int | None) -> np.ndarray | None:
        """A lookup table by document id of the documents not allowed in ``channel_id``
        (one gather, where np.isin would sort); None when all are."""
        if channel_id is None:
            return None
        hidden = [
            document
            for document, allowed in self.channels.items()
            if allowed is not None and channel_id not in allowed
        ]
        if not hidden:
            return None
        table = np.zeros(int(self.document_ids.max()) + 1, dtype=bool)
        table[[d for d in hidden if d < len(table)]] = True
        return table


class VectorIndex:
    """One server's vectors of one model. Changed from one thread (the event loop); a
    ``snapshot()`` taken there may be searched in a worker thread meanwhile."""

    def __init__(
        self,
        model: str,
        dimensions: int | None = None,
        *,
        exact_max_rows: int = EXACT_SCAN_MAX_ROWS,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.exact_max_rows = exact_max_rows  # larger: inverted lists, once made
        self._clusters: Clusters | None = None
        self._version = 0  # changes with the rows: a clustering of older rows is discarded
        self._matrix = np.zeros((0, dimensions or 0), dtype=VECTOR_DTYPE)
        self._chunk_ids = np.zeros(0, dtype=np.int64)
        self._document_ids = np.zeros(0, dtype=np.int64)
        self._size = 0
        self._channels: dict[int, frozenset[int] | None] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory the vectors take (allocated rows included), their ids and lists."""
        arrays = [self._matrix, self._chunk_ids, self._document_ids]
        if self._clusters is not None:
            arrays += [self._clusters.centroids, self._clusters.labels, self._clusters.offsets]
        return sum(int(a.nbytes) for a in arrays)

    def add(
        self,
        document_id: int,
        chunk_ids: Collection[int],
        vectors: np.ndarray,
        channel_ids: Collection[int] | None = None,
    ) -> None:
        """Add a document's vectors (unit rows, in the order of ``chunk_ids``)."""
        count = len(chunk_ids)
        if vectors.shape[0] != count:
            raise ValueError(f"{count} chunk ids for {vectors.shape[0]} vectors")
        self._channels[document_id] = None if channel_ids is None else frozenset(channel_ids)
        if not count:
            return
        self._ensure(vectors.shape[1], self._size + count)
        end = self._size + count
        self._matrix[self._size : end] = vectors
        self._chunk_ids[self._size : end] = np.fromiter(chunk_ids, np.int64, count)
        self._document_ids[self._size : end] = document_id
        self._size = end  # last: a concurrent search sees the rows only once written
        self._version += 1  # the lists stay: new rows are scanned after them until remade

    def load(
        self,
        chunk_ids: Collection[int],
        document_ids: Collection[int],
        vectors: np.ndarray,
        channels: Mapping[int, Collection[int] | None],
    ) -> None:
        """Replace everything with these rows (a server's vectors read from the database).
        A writable float32 ``vectors`` becomes the index's own matrix: the caller must not
        change it afterwards."""
        count = len(chunk_ids)
        self._channels = {d: None if c is None else frozenset(c) for d, c in channels.items()}
        # New arrays: a snapshot taken before keeps the old rows.
        self._size = 0
        self._clusters = None
        self._version += 1
        self._chunk_ids = np.zeros(0, dtype=np.int64)
        self._document_ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, self.dimensions or 0), dtype=VECTOR_DTYPE)
        if not count:
            return
        if vectors.dtype == VECTOR_DTYPE and vectors.flags.c_contiguous and vectors.flags.writeable:
            # Adopted, not copied: a server's vectors are read into a buffer of their own,
            # and a copy would double the memory while loading.
            self._matrix = vectors
            self._chunk_ids = np.fromiter(chunk_ids, np.int64, count)
            self._document_ids = np.fromiter(document_ids, np.int64, count)
            self.dimensions = vectors.shape[1]
        else:
            self._ensure(vectors.shape[1], count)
            self._matrix[:count] = vectors
            self._chunk_ids[:count] = np.fromiter(chunk_ids, np.int64, count)
            self._document_ids[:count] = np.fromiter(document_ids, np.int64, count)
        self._size = count

    def set_channels(self, document_id: int, channel_ids: Collection[int] | None) -> None:
        self._channels[document_id] = None if channel_ids is None else frozenset(channel_ids)

    def remove(self, document_id: int) -> int:
        """Drop a document's vectors; how many there were."""
        self._channels.pop(document_id, None)
        keep = self._document_ids[: self._size] != document_id
        remaining = int(keep.sum())
        removed = self._size - remaining
        if removed:
            # New arrays rather than compacting in place: a search running in a thread
            # keeps reading the old ones.
            self._matrix = self._matrix[: self._size][keep]
            self._chunk_ids = self._chunk_ids[: self._size][keep]
            self._document_ids = self._document_ids[: self._size][keep]
            if self._clusters is not None:
                kept = self._clusters.without(keep[: self._clusters.rows])
                self._clusters = kept if remaining > self.exact_max_rows else None
            self._size = len(self._chunk_ids)
            self._version += 1
        return removed

    # inverted lists ----------------------------------------------------------------------
    def needs_clustering(self) -> bool:
        """Whether the index is too large for an exact scan and has no lists, or stale ones."""
        if self._size <= self.exact_max_rows:
            return False
        return self._clusters is None or self._clusters.stale(self._size)

    def clustering(self) -> Callable[[], Clustered]:
        """The work of making lists for the rows as they are now, to run in a worker thread;
        ``adopt`` its result."""
        version, rows = self._version, self.snapshot()

        def run() -> Clustered:
            clusters, order = train(rows.matrix)
            return Clustered(
                version, clusters, rows.matrix[order], rows.chunk_ids[order],
                rows.document_ids[order],
            )  # fmt: skip

        return run

    def adopt(self, done: Clustered) -> bool:
        """Use lists made by ``clustering``; False (and nothing changes) if the rows changed
        meanwhile."""
        if done.version != self._version:
            return False
        self._matrix, self._chunk_ids, self._document_ids = (
            done.matrix, done.chunk_ids, done.document_ids
        )  # fmt: skip
        self._size = len(done.chunk_ids)
        self._clusters = done.clusters
        self._version += 1
        return True

    def search(
        self, query: np.ndarray, k: int, *, channel_id: int | None = None, min_score: float = -1.0
    ) -> list[Hit]:
        """``Snapshot.search`` on the rows as they are now."""
        return self.snapshot().search(query, k, channel_id=channel_id, min_score=min_score)

    def snapshot(self) -> Snapshot:
        """The rows as they are now (take it on the thread that changes the index)."""
        size = self._size
        return Snapshot(
            self._matrix[:size],
            self._chunk_ids[:size],
            self._document_ids[:size],
            dict(self._channels),
            self._clusters,
        )

    def _ensure(self, dimensions: int, rows: int) -> None:
        """Room for ``rows`` rows of ``dimensions`` (an empty index takes any)."""
        if not self._size and self._matrix.shape[1] != dimensions:
            self._matrix = np.zeros((0, dimensions), dtype=VECTOR_DTYPE)
        if dimensions != self._matrix.shape[1]:
            raise ValueError(f"{dimensions}-dimension vectors in a {self.dimensions} index")
        self.dimensions = dimensions
        if rows <= len(self._matrix):
            return
        # Half again, not double: at 100,000 rows of 768 a doubling would be 300 MB idle.
        capacity = max(INITIAL_CAPACITY, rows, len(self._matrix) * 3 // 2)
        matrix = np.zeros((capacity, dimensions), dtype=VECTOR_DTYPE)
        matrix[: self._size] = self._matrix[: self._size]
        chunk_ids = np.zeros(capacity, dtype=np.int64)
        chunk_ids[: self._size] = self._chunk_ids[: self._size]
        document_ids = np.zeros(capacity, dtype=np.int64)
        document_ids[: self._size] = self._document_ids[: self._size]
        self._matrix, self._chunk_ids, self._document_ids = matrix, chunk_ids, document_ids
