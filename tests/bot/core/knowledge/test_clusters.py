"""Inverted lists for large indexes: k-means lists whose rows are slices of the matrix, a
search that scans the nearest lists and the rows added since, and an index that keeps its
answers through adds, removes and channel limits while the lists are made or remade."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.knowledge.clusters import PROBE_SHARE, RETRAIN_SHARE, Clusters, train
from bot.core.knowledge.index import VectorIndex

DIMS = 32
TOPICS = 40
PER_DOCUMENT = 50  # rows per document; a document is about one topic
EXACT_MAX = 500  # rows an index in these tests scans exactly


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def topics() -> np.ndarray:
    return unit(np.random.default_rng(1).standard_normal((TOPICS, DIMS)))


def near(topics: np.ndarray, topic: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` unit rows about the given topics (passages of documents, or questions)."""
    noise = unit(np.random.default_rng(seed).standard_normal((n, DIMS)))
    return unit(topics[topic] + 0.45 * noise)


def filled(
    topics: np.ndarray, documents: int = 40, seed: int = 2
) -> tuple[VectorIndex, np.ndarray]:
    """An index of ``documents`` documents (document d about topic d % TOPICS) and its rows
    in the order added (chunk id = row number)."""
    index = VectorIndex("m", exact_max_rows=EXACT_MAX)
    everything = []
    for document in range(documents):
        about = np.full(PER_DOCUMENT, document % TOPICS)
        vectors = near(topics, about, PER_DOCUMENT, seed + document)
        first = document * PER_DOCUMENT
        index.add(document, list(range(first, first + PER_DOCUMENT)), vectors)
        everything.append(vectors)
    return index, np.vstack(everything)


def clustered(index: VectorIndex) -> None:
    assert index.needs_clustering()
    assert index.adopt(index.clustering()())
    assert not index.needs_clustering()


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(matrix @ query), kind="stable")[:k].tolist()


def test_training_groups_each_row_with_its_nearest_centroid(topics: np.ndarray) -> None:
    _, matrix = filled(topics)
    clusters, order = train(matrix)
    assert sorted(order.tolist()) == list(range(len(matrix)))  # a permutation
    assert len(clusters.centroids) == round(np.sqrt(len(matrix)))
    assert np.all(np.diff(clusters.labels) >= 0)  # grouped: each list is one slice
    nearest = np.argmax(matrix[order] @ clusters.centroids.T, axis=1)
    assert np.array_equal(nearest, clusters.labels)
    for label in (0, len(clusters.centroids) - 1):
        start, end = clusters.offsets[label], clusters.offsets[label + 1]
        assert set(clusters.labels[start:end].tolist()) <= {label}


def test_a_search_scans_a_share_of_the_rows_and_finds_what_the_exact_scan_finds(
    topics: np.ndarray,
) -> None:
    index, matrix = filled(topics)
    queries = near(topics, np.arange(TOPICS), TOPICS, seed=99)
    exact = [exact_top(matrix, q, 5) for q in queries]
    assert [[h.chunk_id for h in index.search(q, 5)] for q in queries] == exact  # exact scan
    clustered(index)
    snapshot = index.snapshot()
    assert snapshot.clusters is not None
    scanned = [sum(e - s for s, e in snapshot.clusters.segments(q, len(index))) for q in queries]
    assert max(scanned) < len(index) * 4 * PROBE_SHARE  # lists are uneven; never near all
    found = [[h.chunk_id for h in index.search(q, 5)] for q in queries]
    recall = np.mean([len(set(f) & set(e)) / 5 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95
    for row in (0, 777, len(matrix) - 1):  # a stored passage finds itself, scored exactly
        [best] = index.search(matrix[row], 1)
        assert best.chunk_id == row and best.score == pytest.approx(1.0)


def test_rows_added_after_the_lists_are_scanned_until_the_lists_are_remade(
    topics: np.ndarray,
) -> None:
    index, _ = filled(topics)
    clustered(index)
    listed = len(index)
    extra = near(topics, np.zeros(10, dtype=int), 10, seed=5)
    index.add(1000, list(range(5000, 5010)), extra)
    assert not index.needs_clustering()  # a few rows: scanned after the lists
    [best] = index.search(extra[3], 1)
    assert best.chunk_id == 5003 and best.document_id == 1000
    more = int(RETRAIN_SHARE * listed) + 1
    index.add(1001, list(range(6000, 6000 + more)), near(topics, np.ones(more, int), more, 6))
    assert index.needs_clustering()
    clustered(index)
    assert index.search(extra[3], 1)[0].chunk_id == 5003


def test_removing_a_document_keeps_the_lists_true_and_drops_them_when_small(
    topics: np.ndarray,
) -> None:
    index, matrix = filled(topics)
    clustered(index)
    assert index.remove(7) == PER_DOCUMENT
    for row in range(7 * PER_DOCUMENT, 8 * PER_DOCUMENT, 10):
        assert all(h.document_id != 7 for h in index.search(matrix[row], 5))
    for row in (0, 8 * PER_DOCUMENT, len(matrix) - 1):
        assert index.search(matrix[row], 1)[0].chunk_id == row
    assert index.snapshot().clusters is not None
    for document in range(8, 40):  # down to 350 rows: an exact scan again
        index.remove(document)
    assert len(index) == 7 * PER_DOCUMENT and index.snapshot().clusters is None
    assert index.search(matrix[5], 1)[0].chunk_id == 5


def test_lists_made_from_rows_that_changed_meanwhile_are_not_used(topics: np.ndarray) -> None:
    index, matrix = filled(topics)
    work = index.clustering()
    index.remove(3)  # while the work runs in its thread
    assert not index.adopt(work())
    assert index.snapshot().clusters is None and index.needs_clustering()
    assert all(h.document_id != 3 for h in index.search(matrix[3 * PER_DOCUMENT], 5))


def test_a_snapshot_taken_before_the_lists_keeps_its_rows(topics: np.ndarray) -> None:
    index, matrix = filled(topics)
    before = index.snapshot()
    clustered(index)
    assert [h.chunk_id for h in before.search(matrix[42], 3)] == exact_top(matrix, matrix[42], 3)


def test_channel_limits_hold_with_lists_and_the_exact_scan_fills_in(topics: np.ndarray) -> None:
    index, matrix = filled(topics)
    for document in range(40):
        index.set_channels(document, None if document == 39 else [100])
    clustered(index)
    question = matrix[0]  # topic 0; document 39 (the only one allowed in 555) is topic 39
    found = index.search(question, 5, channel_id=555)
    # The lists near topic 0 hold nothing allowed in 555: the exact scan finds document 39.
    assert len(found) == 5 and {h.document_id for h in found} == {39}
    assert {h.document_id for h in index.search(question, 5, channel_id=100)} <= set(range(39))


def test_a_single_list_for_a_tiny_matrix() -> None:
    matrix = unit(np.random.default_rng(3).standard_normal((1, DIMS)))
    clusters, order = train(matrix)
    assert order.tolist() == [0] and clusters.offsets.tolist() == [0, 1]
    assert Clusters.of(clusters.centroids, clusters.labels).rows == 1
