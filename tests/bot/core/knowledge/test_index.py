"""VectorIndex: exact top-k by cosine, channel limits, adding and removing documents, and
snapshots that stay consistent while the index changes."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.knowledge.index import INITIAL_CAPACITY, VectorIndex

DIMS = 16


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIMS, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def rows(*vectors: np.ndarray) -> np.ndarray:
    return np.vstack(vectors).astype(np.float32)


@pytest.fixture
def index() -> VectorIndex:
    index = VectorIndex("nomic-embed-text")
    # document 1: three chunks at growing angles from the x axis; document 2: one on y
    index.add(1, [10, 11, 12], rows(unit(1, 0), unit(1, 0.5), unit(1, 2)))
    index.add(2, [20], rows(unit(0, 1)))
    return index


def test_the_best_k_come_first_with_their_cosines(index: VectorIndex) -> None:
    hits = index.search(unit(1, 0), 3)
    assert [h.chunk_id for h in hits] == [10, 11, 12]
    assert [h.document_id for h in hits] == [1, 1, 1]
    assert hits[0].score == pytest.approx(1.0)
    assert hits[1].score == pytest.approx(1 / np.sqrt(1.25))
    assert [h.chunk_id for h in index.search(unit(0, 1), 2)] == [20, 12]


def test_k_larger_than_the_index_returns_everything_in_order(index: VectorIndex) -> None:
    hits = index.search(unit(0, 1), 10)
    assert [h.chunk_id for h in hits] == [20, 12, 11, 10]
    assert index.search(unit(0, 1), 0) == []


def test_the_floor_drops_what_is_not_close_enough(index: VectorIndex) -> None:
    assert [h.chunk_id for h in index.search(unit(1, 0), 4, min_score=0.8)] == [10, 11]
    assert index.search(unit(0, 0, 1), 4, min_score=0.1) == []


def test_documents_limited_to_channels_are_found_only_there() -> None:
    index = VectorIndex("m")
    index.add(1, [10], rows(unit(1, 0)), channel_ids=[100, 101])
    index.add(2, [20], rows(unit(1, 0.1)))  # every channel
    assert [h.chunk_id for h in index.search(unit(1, 0), 5, channel_id=100)] == [10, 20]
    assert [h.chunk_id for h in index.search(unit(1, 0), 5, channel_id=999)] == [20]
    assert [h.chunk_id for h in index.search(unit(1, 0), 5)] == [10, 20]  # no channel: all
    index.set_channels(1, [999])
    assert [h.chunk_id for h in index.search(unit(1, 0), 5, channel_id=999)] == [10, 20]
    assert [h.chunk_id for h in index.search(unit(1, 0), 5, channel_id=100)] == [20]


def test_removing_a_document_removes_all_its_rows(index: VectorIndex) -> None:
    assert index.remove(1) == 3
    assert len(index) == 1
    assert [h.chunk_id for h in index.search(unit(1, 0), 5)] == [20]
    assert index.remove(1) == 0
    index.add(3, [30], rows(unit(1, 0)))
    assert [h.chunk_id for h in index.search(unit(1, 0), 5)] == [30, 20]


def test_a_snapshot_is_not_changed_by_later_adds_and_removes(index: VectorIndex) -> None:
    snapshot = index.snapshot()
    index.remove(1)
    for n in range(INITIAL_CAPACITY + 5):  # past the capacity: new arrays
        index.add(100 + n, [1000 + n], rows(unit(1, 0)))
    assert [h.chunk_id for h in snapshot.search(unit(1, 0), 3)] == [10, 11, 12]
    assert len(index) == INITIAL_CAPACITY + 6


def test_growing_keeps_every_row(index: VectorIndex) -> None:
    rng = np.random.default_rng(7)
    added = rng.standard_normal((3 * INITIAL_CAPACITY, DIMS)).astype(np.float32)
    added /= np.linalg.norm(added, axis=1, keepdims=True)
    index.add(5, list(range(500, 500 + len(added))), added)
    for row in (0, INITIAL_CAPACITY, len(added) - 1):
        [best] = index.search(added[row], 1)
        assert best.chunk_id == 500 + row and best.score == pytest.approx(1.0)
    assert index.nbytes >= len(index) * DIMS * 4


def test_load_replaces_the_rows(index: VectorIndex) -> None:
    index.load([7, 8], [4, 4], rows(unit(0, 0, 1), unit(0, 1)), {4: None, 5: [1]})
    assert len(index) == 2
    assert [h.chunk_id for h in index.search(unit(0, 0, 1), 5)] == [7, 8]


def test_vectors_of_another_length_are_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="dimension"):
        index.add(9, [90], np.ones((1, DIMS + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        index.search(np.ones(DIMS + 1, dtype=np.float32), 1)
