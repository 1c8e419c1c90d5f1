"""Embeddings follow the routing rules: to a host that has the embedding model, and to
another one when a host fails."""

from __future__ import annotations

from tests.bot.core.hosts.conftest import host_of, only, spread_over
from tests.emulators.ollama_server import OllamaEmulator


def embeds(emu: OllamaEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/embed")


async def test_embeddings_go_to_the_host_with_the_embedding_model() -> None:
    async with (
        OllamaEmulator(only("llama3.2")) as a,
        OllamaEmulator(only("llama3.2", "nomic-embed-text")) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        vectors = await manager.embed(["one", "two"])
    assert len(vectors) == 2 and len(vectors[0]) == 768
    assert (embeds(a), embeds(b)) == (0, 1)


async def test_an_embedding_moves_to_another_host_when_one_fails() -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(None, [(a, None), (b, None)], max_retries=0) as manager,
    ):
        a.fail_next(paths=("/api/embed",), status=500, error="runner crashed")
        vectors = await manager.embed("hello")
        stats = manager.get_statistics()
        errors = host_of(manager, a).errors
    assert len(vectors) == 1
    assert (embeds(a), embeds(b)) == (1, 1)
    # Moved without a retry: MAX_RETRIES 0 would otherwise have given up.
    assert (stats["host_switches"], stats["retries"], stats["failed_requests"]) == (1, 0, 0)
    assert errors == 1
