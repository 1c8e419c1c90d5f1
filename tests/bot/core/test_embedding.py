"""The Embedder through the request manager, against the Ollama emulator: batches, order,
the model each vector came from, no fallback, retries, statistics, timeouts and limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from bot import OllamaRequestManager
from bot.core.embedding import EMBED_BATCH, MAX_EMBED_CHARS, from_blob, to_blob
from bot.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OllamaError,
    OllamaRequestError,
    OllamaServerError,
    OllamaTimeoutError,
)
from tests.conftest import ManagerFactory
from tests.emulators import ollama_models as catalogue
from tests.emulators import ollama_text
from tests.emulators.ollama_server import BUSY, OllamaEmulator

NOMIC = "nomic-embed-text"
MXBAI = "mxbai-embed-large"


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    # Overrides tests/conftest.py's: a second embedding model, for changes of model.
    async with OllamaEmulator(catalogue.extended_models()) as emu:
        yield emu


def embed_inputs(emu: OllamaEmulator) -> list[list[str]]:
    """The texts of each /api/embed request, in arrival order."""
    return [list((r.json or {})["input"]) for r in emu.requests if r.path == "/api/embed"]


def embed_models(emu: OllamaEmulator) -> list[str]:
    return [str((r.json or {})["model"]) for r in emu.requests if r.path == "/api/embed"]


def expected(text: str, model: str = NOMIC, dimensions: int = 768) -> np.ndarray:
    """What the emulator's model makes of ``text`` (ollama_text.embedding's bag of words)."""
    return np.asarray(ollama_text.embedding(text, dimensions, model), dtype=np.float32)


async def test_texts_go_in_batches_and_come_back_in_order(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    texts = [f"passage {i} about topic{i}" for i in range(70)]
    result = await manager.embedder.embed(texts)
    batches = embed_inputs(ollama_emu)
    # 70 texts in batches of 32: three calls, each a run of consecutive texts.
    assert EMBED_BATCH == 32
    assert sorted(batches) == sorted([texts[:32], texts[32:64], texts[64:]])
    assert result.vectors.shape == (70, 768) and result.vectors.dtype == np.float32
    assert result.dimensions == 768
    for row, text in zip(result.vectors, texts, strict=True):
        np.testing.assert_allclose(row, expected(text), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-6)
    stats = manager.get_statistics()
    assert (stats["embedding_requests"], stats["texts_embedded"]) == (3, 70)
    assert stats["model_usage"] == {}  # it counts answers; embeddings have their own


async def test_similar_texts_rank_first_through_the_embedder(
    manager: OllamaRequestManager,
) -> None:
    passages = ["Cats purr when content.", "Paris is the capital of France.", "Rust has traits."]
    found = await manager.embedder.embed(passages)
    question = await manager.embedder.embed(["What is the capital of France?"])
    scores = found.vectors @ question.vectors[0]  # unit rows: dot products are cosines
    assert int(np.argmax(scores)) == 1
    assert scores[1] == pytest.approx(2 / np.sqrt(6), abs=1e-5)


async def test_the_model_is_recorded_with_the_vectors(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(embedding_model=MXBAI)
    await manager.start()
    default = await manager.embedder.embed(["capital of France"])
    chosen = await manager.embedder.embed(["capital of France"], model=NOMIC)
    assert (default.model, default.dimensions) == (MXBAI, 1024)
    assert (chosen.model, chosen.dimensions) == (NOMIC, 768)
    assert embed_models(ollama_emu) == [MXBAI, NOMIC]
    np.testing.assert_allclose(
        default.vectors[0], expected("France capital", MXBAI, 1024), atol=1e-6
    )


async def test_a_missing_model_is_reported_not_replaced(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(embedding_model="no-such-embedder", fallback_models=[NOMIC])
    await manager.start()
    with pytest.raises(ModelNotFoundError) as caught:
        await manager.embedder.embed(["hello"])
    assert caught.value.model == "no-such-embedder"
    # Asked once: a 404 is not retried, and no other model stands in.
    assert embed_models(ollama_emu) == ["no-such-embedder"]
    stats = manager.get_statistics()
    assert stats["failed_requests"] == 1 and stats["embedding_requests"] == 0


@pytest.mark.parametrize(("status", "error"), [(500, "internal error"), (503, BUSY)])
async def test_a_failed_call_is_retried(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator, status: int, error: str
) -> None:
    ollama_emu.fail_next(2, status=status, error=error, paths=("/api/embed",))
    result = await manager.embedder.embed(["hello", "world"])
    np.testing.assert_allclose(result.vectors[1], expected("world"), atol=1e-6)
    assert embed_inputs(ollama_emu) == [["hello", "world"]] * 3
    stats = manager.get_statistics()
    assert (stats["retries"], stats["failed_requests"]) == (2, 0)
    assert (stats["embedding_requests"], stats["texts_embedded"]) == (1, 2)


async def test_retries_end_with_the_error(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_retries=2)
    await manager.start()
    ollama_emu.fail_next(5, status=500, error="model runner crashed", paths=("/api/embed",))
    with pytest.raises(OllamaServerError, match="model runner crashed"):
        await manager.embedder.embed(["hello"])
    assert len(embed_inputs(ollama_emu)) == 3
    stats = manager.get_statistics()
    assert (stats["retries"], stats["failed_requests"], stats["embedding_requests"]) == (2, 1, 0)
    assert stats["error_types"] == {"OllamaServerError": 1}


async def test_a_failed_batch_stops_the_batches_still_waiting(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    # Seven batches, two at a time: the first two fail for good. Those still waiting for a
    # slot must not be sent after the caller has its error; the next call would wait
    # behind them (the slots are first come, first served).
    texts = [f"text {i}" for i in range(7 * EMBED_BATCH)]
    ollama_emu.fail_next(2, status=400, error="bad batch", paths=("/api/embed",))
    with pytest.raises(OllamaError, match="bad batch"):
        await manager.embedder.embed(texts)
    after = await manager.embedder.embed(["after"])
    np.testing.assert_allclose(after.vectors[0], expected("after"), atol=1e-6)
    sent = [text for batch in embed_inputs(ollama_emu) for text in batch]
    assert not set(sent) & set(texts[4 * EMBED_BATCH :])


async def test_a_stalled_call_times_out(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(request_timeout=0.2, max_retries=1)
    await manager.start()
    ollama_emu.load_delay = 30.0  # the embedding model takes "forever" to load
    with pytest.raises(OllamaTimeoutError):
        await manager.embedder.embed(["hello"])
    assert len(embed_inputs(ollama_emu)) == 2  # tried again once
    assert manager.get_statistics()["error_types"] == {"OllamaTimeoutError": 1}


async def test_too_much_text_is_refused_before_asking(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    half = "x" * (MAX_EMBED_CHARS // 2)
    with pytest.raises(InvalidRequestError):
        await manager.embedder.embed([half, half, "y"])
    assert embed_inputs(ollama_emu) == []
    exactly = await manager.embedder.embed(["word " * 10, "x" * (MAX_EMBED_CHARS - 50)])
    assert exactly.vectors.shape == (2, 768)


async def test_nothing_to_embed_asks_nothing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    result = await manager.embedder.embed([])
    assert (result.model, result.vectors.shape, result.dimensions) == (NOMIC, (0, 0), 0)
    assert embed_inputs(ollama_emu) == []


async def test_a_chat_model_that_cannot_embed_is_an_error(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    with pytest.raises(OllamaRequestError, match="does not support embeddings"):
        await manager.embedder.embed(["hello"], model="qwen3")
    # Asked once: the same request cannot succeed, and no other model stands in.
    assert embed_models(ollama_emu) == ["qwen3"]


def test_a_vector_survives_its_blob() -> None:
    vector = expected("capital of France")
    blob = to_blob(vector)
    assert len(blob) == 768 * 4
    np.testing.assert_array_equal(from_blob(blob), vector)
