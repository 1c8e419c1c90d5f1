"""Model management and health through the manager, against the emulator."""

from __future__ import annotations

import asyncio
import math

import pytest

from bot import OllamaRequestManager
from bot.core.errors import InvalidRequestError, ModelNotFoundError, OllamaError
from bot.core.types import PullProgress
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator


def tag_calls(emu: OllamaEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/tags")


async def test_list_models_is_cached(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    models = await manager.list_models()
    assert {m.name for m in models} >= {"llama3.2:latest", "qwen3:latest"}
    llama = next(m for m in models if m.name == "llama3.2:latest")
    assert llama.family == "llama" and llama.quantization_level and llama.size > 0
    await manager.list_models()
    assert tag_calls(ollama_emu) == 1
    await manager.list_models(force_refresh=True)
    assert tag_calls(ollama_emu) == 2


async def test_is_model_available_normalizes_tags(manager: OllamaRequestManager) -> None:
    assert await manager.is_model_available("llama3.2")
    assert await manager.is_model_available("llama3.2:latest")
    assert not await manager.is_model_available("llama3.2:70b")


async def test_show_model(manager: OllamaRequestManager) -> None:
    details = await manager.show_model("qwen3")
    assert details.family
    assert details.context_length and details.context_length > 0
    assert "thinking" in details.capabilities
    with pytest.raises(ModelNotFoundError):
        await manager.show_model("ghost")


async def test_pull_reports_progress_and_refreshes_the_list() -> None:
    pullable = {"tinyllama:latest": EmulatedModel(name="tinyllama:latest")}
    async with (
        OllamaEmulator(pullable=pullable) as emu,
        OllamaRequestManager(host=emu.url, database_url="sqlite+aiosqlite:///:memory:") as manager,
    ):
        assert not await manager.is_model_available("tinyllama")
        updates: list[PullProgress] = []
        assert await manager.pull_model("tinyllama", progress=updates.append)
        assert updates[-1].status == "success"
        fractions = [u.fraction for u in updates if u.fraction is not None]
        assert fractions and fractions[-1] == 1.0
        assert await manager.is_model_available("tinyllama")


async def test_pull_of_unknown_model_raises(manager: OllamaRequestManager) -> None:
    with pytest.raises(OllamaError) as info:
        await manager.pull_model("does-not-exist")
    assert "file does not exist" in info.value.user_message


async def test_pull_refuses_bad_names(manager: OllamaRequestManager) -> None:
    with pytest.raises(InvalidRequestError):
        await manager.pull_model("two words")


async def test_embed(manager: OllamaRequestManager) -> None:
    vectors = await manager.embed(["hello", "world", "hello"], model="nomic-embed-text")
    assert len(vectors) == 3
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert math.isclose(math.fsum(x * x for x in vectors[0]), 1.0, rel_tol=1e-6)
    assert await manager.embed([]) == []
    single = await manager.embed("hello", model="nomic-embed-text")
    assert single == [vectors[0]]


async def test_health_check_flips_with_the_server(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    healthy = await manager.health_check()
    assert healthy.ok and healthy.version and healthy.latency_ms is not None
    ollama_emu.refuse_connections()
    down = await manager.health_check()
    assert not down.ok and down.error and ollama_emu.url in down.error
    await ollama_emu.accept_connections()
    assert (await manager.health_check()).ok


async def test_statistics_have_the_seed_keys(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply("one two three")
    await manager.query(prompt="x", session_id="a")
    await manager.query(prompt="y", model="qwen3")
    stats = manager.get_statistics()
    for key in (
        "total_requests",
        "total_tokens_generated",
        "total_errors",
        "model_usage",
        "active_sessions",
        "successful_requests",
        "failed_requests",
        "average_processing_time",
        "error_rate",
        "queue_depth",
    ):
        assert key in stats
    assert stats["total_requests"] == 2 and stats["successful_requests"] == 2
    assert stats["total_tokens_generated"] == 6
    assert stats["active_sessions"] == 1
    assert sum(stats["model_usage"].values()) == 2 and len(stats["model_usage"]) == 2
    assert stats["average_processing_time"] > 0


async def test_session_management(manager: OllamaRequestManager) -> None:
    await manager.create_session("a", system_prompt="S")
    await manager.query(prompt="x", session_id="a")
    await manager.query(prompt="x", session_id="b")
    assert manager.get_statistics()["active_sessions"] == 2
    recreated = await manager.create_session("a")
    assert len(recreated) == 0
    assert (await manager.get_session("a")).messages == []  # type: ignore[union-attr]
    assert await manager.delete_session("b")
    assert not await manager.delete_session("b")
    assert await manager.get_session("b") is None
    assert await manager.clear_all_sessions() == 1
    assert manager.get_statistics()["active_sessions"] == 0


async def test_unknown_session_settings_are_refused(manager: OllamaRequestManager) -> None:
    with pytest.raises(InvalidRequestError):
        await manager.update_session_settings("a", colour="blue")
    with pytest.raises(InvalidRequestError):
        await manager.update_session_settings("a", options={"warp": 9})


async def test_capabilities_are_cached_and_quiet_on_errors(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    assert "thinking" in await manager.catalog.capabilities("qwen3")
    assert "thinking" in await manager.catalog.capabilities("qwen3:latest")
    assert sum(1 for r in ollama_emu.requests if r.path == "/api/show") == 1
    assert await manager.catalog.capabilities("ghost") == ()


async def test_concurrent_capability_lookups_share_one_request(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    results = await asyncio.gather(*(manager.catalog.capabilities("qwen3") for _ in range(20)))
    assert all("thinking" in r for r in results)
    assert sum(1 for r in ollama_emu.requests if r.path == "/api/show") == 1
