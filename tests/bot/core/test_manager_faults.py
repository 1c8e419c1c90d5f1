"""Faults injected at the wire: retries, fallback, timeouts, and what gets stored."""

from __future__ import annotations

import pytest

from bot import OllamaRequestManager
from bot.core.errors import (
    ModelNotFoundError,
    OllamaConnectionLostError,
    OllamaRequestError,
    OllamaServerError,
    OllamaTimeoutError,
    OllamaUnavailableError,
)
from bot.core.events import FallbackEvent, QueryEvent, RetryEvent
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator

LONG_ANSWER = " ".join(f"word{i}" for i in range(40))


def chat_count(emu: OllamaEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/chat")


async def stored(manager: OllamaRequestManager, session_id: str) -> list[str]:
    return [m["content"] for m in await manager.store.messages(session_id)]


async def test_server_error_is_retried_then_succeeds(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.fail_next(2, status=500, error="boom")
    events: list[QueryEvent] = []
    result = await manager.query(prompt="hi", on_event=events.append)
    assert result.content == "Echo: hi"
    assert result.metadata["retries"] == 2
    assert chat_count(ollama_emu) == 3
    retries = [e for e in events if isinstance(e, RetryEvent)]
    assert [e.attempt for e in retries] == [1, 2]
    assert manager.get_statistics()["retries"] == 2


async def test_busy_server_is_retried(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.fail_next(1, status=503, error="server busy")
    assert (await manager.query(prompt="hi")).content == "Echo: hi"
    assert chat_count(ollama_emu) == 2


async def test_retries_give_up_after_max_retries(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.fail_next(10, status=500)
    with pytest.raises(OllamaServerError):
        await manager.query(prompt="hi", max_retries=2, session_id="s")
    assert chat_count(ollama_emu) == 3
    assert await stored(manager, "s") == []
    stats = manager.get_statistics()
    assert stats["failed_requests"] == 1 and stats["error_rate"] == 100.0


async def test_client_errors_are_not_retried(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    with pytest.raises(OllamaRequestError) as info:
        await manager.query(prompt="hi", model="llama3.2", think=True)
    assert "thinking" in info.value.user_message
    assert chat_count(ollama_emu) == 1


async def test_refused_connection_names_the_host(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.refuse_connections()
    events: list[QueryEvent] = []
    with pytest.raises(OllamaUnavailableError) as info:
        await manager.query(prompt="hi", max_retries=1, on_event=events.append)
    assert ollama_emu.url in info.value.user_message
    assert sum(isinstance(e, RetryEvent) for e in events) == 1


async def test_recovers_when_ollama_comes_back(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.refuse_connections()
    with pytest.raises(OllamaUnavailableError):
        await manager.query(prompt="hi", max_retries=0)
    await ollama_emu.accept_connections()
    assert (await manager.query(prompt="hi")).content == "Echo: hi"


async def test_missing_model_falls_back(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(fallback_models=("nope:1b", "qwen3"))
    await manager.start()
    events: list[QueryEvent] = []
    result = await manager.query(prompt="hi", model="missing", on_event=events.append)
    assert result.fallback_from == "missing"
    assert result.model.startswith("qwen3")
    assert [e.model for e in events if isinstance(e, FallbackEvent)] == ["nope:1b", "qwen3"]
    models = [r.json["model"] for r in ollama_emu.requests if r.path == "/api/chat"]
    assert models == ["missing", "nope:1b", "qwen3"]
    assert manager.get_statistics()["fallbacks"] == 1


async def test_missing_model_without_fallback(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await manager.query(prompt="hi", model="ghost")
    assert info.value.model == "ghost"
    assert "ghost" in info.value.user_message
    assert chat_count(ollama_emu) == 1


async def test_stall_before_first_token_times_out_and_retries(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(first_token_timeout=0.3)
    await manager.start()
    ollama_emu.stall_before_first_token(2.0)
    result = await manager.query(prompt="hi")
    assert result.content == "Echo: hi"
    assert result.metadata["retries"] == 1


async def test_stall_before_first_token_gives_up(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(first_token_timeout=0.2)
    await manager.start()
    ollama_emu.stall_before_first_token(2.0, count=5)
    with pytest.raises(OllamaTimeoutError) as info:
        await manager.query(prompt="hi", max_retries=1)
    assert "start answering" in info.value.user_message


async def test_stall_mid_stream_keeps_partial_and_stores_nothing(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(stream_idle_timeout=0.3)
    await manager.start()
    ollama_emu.set_reply(LONG_ANSWER)
    ollama_emu.stall_mid_stream(after_tokens=5, seconds=3.0)
    stream = await manager.query(prompt="long", stream=True, session_id="s")
    received: list[str] = []
    with pytest.raises(OllamaTimeoutError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert "".join(received) == " ".join(LONG_ANSWER.split()[:5])
    assert info.value.partial_content == "".join(received)
    assert await stored(manager, "s") == []
    assert chat_count(ollama_emu) == 1  # text was already shown: no silent restart


async def test_drop_mid_stream_keeps_partial_and_stores_nothing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply(LONG_ANSWER)
    ollama_emu.drop_mid_stream(after_tokens=3)
    stream = await manager.query(prompt="long", stream=True, session_id="s")
    received: list[str] = []
    with pytest.raises(OllamaConnectionLostError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert received and info.value.partial_content == "".join(received)
    assert LONG_ANSWER.startswith(info.value.partial_content)
    assert await stored(manager, "s") == []
    # A session is created by its first completed turn: a failed first question leaves none.
    assert (await manager.get_session("s")) is None


async def test_a_drop_before_any_text_says_so(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    """A question dropped before its first token (still in the server's queue) is not told
    the connection was lost "mid-answer"."""
    ollama_emu.drop_mid_stream(after_tokens=0, count=10)
    stream = await manager.query(prompt="hello", stream=True, session_id="s")
    with pytest.raises(OllamaConnectionLostError) as info:
        async for _ in stream:
            pass
    assert info.value.user_message == OllamaConnectionLostError.BEFORE_ANSWER
    assert info.value.partial_content == ""


async def test_error_line_mid_stream_is_typed(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply(LONG_ANSWER)
    ollama_emu.error_mid_stream(after_tokens=4, error="model runner has unexpectedly stopped")
    stream = await manager.query(prompt="long", stream=True, session_id="s")
    with pytest.raises(OllamaServerError) as info:
        async for _ in stream:
            pass
    assert "unexpectedly stopped" in info.value.user_message
    assert len(info.value.partial_content.split()) == 4
    assert await stored(manager, "s") == []


async def test_non_streaming_query_restarts_after_mid_stream_failure(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply(LONG_ANSWER)
    ollama_emu.drop_mid_stream(after_tokens=3)
    result = await manager.query(prompt="long", session_id="s")
    assert result.content == LONG_ANSWER
    assert await stored(manager, "s") == ["long", LONG_ANSWER]


async def test_session_usable_after_failure(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.fail_next(1, status=500)
    with pytest.raises(OllamaServerError):
        await manager.query(prompt="first", session_id="s", max_retries=0)
    await manager.query(prompt="second", session_id="s")
    assert await stored(manager, "s") == ["second", "Echo: second"]


async def test_overall_timeout(make_manager: ManagerFactory, ollama_emu: OllamaEmulator) -> None:
    manager = make_manager()
    await manager.start()
    ollama_emu.tokens_per_second = 20
    ollama_emu.set_reply(LONG_ANSWER)
    with pytest.raises(OllamaTimeoutError) as info:
        await manager.query(prompt="slow", timeout_ms=300, max_retries=0)
    assert "longer than" in info.value.user_message
