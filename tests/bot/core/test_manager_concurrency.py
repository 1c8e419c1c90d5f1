"""Ordering and fairness: one query at a time per session, a global cap across sessions."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot import OllamaRequestManager
from bot.core.errors import ShuttingDownError
from bot.core.events import QueryEvent, QueuedEvent
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import wait_until


async def test_same_session_is_serialized_in_arrival_order(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.tokens_per_second = 200
    ollama_emu.set_reply(lambda body: "answer to " + body["messages"][-1]["content"])
    tasks = []
    for i in range(4):
        tasks.append(asyncio.create_task(manager.query(prompt=f"q{i}", session_id="chan")))
        await asyncio.sleep(0)  # fix the arrival order
    await asyncio.gather(*tasks)
    assert ollama_emu.max_active_seen == 1
    stored = [m["content"] for m in await manager.store.messages("chan")]
    assert stored == [x for i in range(4) for x in (f"q{i}", f"answer to q{i}")]
    # each query saw the previous turns: q3 went out with the 6 messages before it
    last = [r.json for r in ollama_emu.requests if r.path == "/api/chat"][-1]
    assert len(last["messages"]) == 7


async def test_different_sessions_run_in_parallel_up_to_the_cap(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_concurrent_requests=3)
    await manager.start()
    ollama_emu.tokens_per_second = 100
    ollama_emu.set_reply("a b c d e f g h i j")
    results = await asyncio.gather(
        *(manager.query(prompt="go", session_id=f"s{i}") for i in range(6))
    )
    assert all(r.content == "a b c d e f g h i j" for r in results)
    assert ollama_emu.max_active_seen == 3


async def test_waiting_queries_report_their_position(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_concurrent_requests=1)
    await manager.start()
    ollama_emu.tokens_per_second = 100
    ollama_emu.set_reply("a b c d e")
    events: dict[int, list[QueryEvent]] = {i: [] for i in range(3)}
    tasks = []
    for i in range(3):
        tasks.append(
            asyncio.create_task(
                manager.query(prompt="x", session_id=f"s{i}", on_event=events[i].append)
            )
        )
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    positions = {
        i: [e.position for e in evs if isinstance(e, QueuedEvent)] for i, evs in events.items()
    }
    assert positions[0] == []
    assert positions[1] == [1]
    assert positions[2] == [2, 1]


async def test_second_query_in_a_session_says_it_waits_for_the_session(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.tokens_per_second = 100
    ollama_emu.set_reply("a b c d e")
    events: list[QueryEvent] = []
    first = asyncio.create_task(manager.query(prompt="1", session_id="c"))
    await asyncio.sleep(0.01)
    await asyncio.gather(first, manager.query(prompt="2", session_id="c", on_event=events.append))
    queued = [e for e in events if isinstance(e, QueuedEvent)]
    assert queued == [QueuedEvent(position=1, reason="session")]


async def test_cancelled_stream_frees_its_slot_and_stores_nothing(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_concurrent_requests=1)
    await manager.start()
    ollama_emu.tokens_per_second = 50
    ollama_emu.set_reply(" ".join(["tok"] * 100))
    stream = await manager.query(prompt="long", stream=True, session_id="c")
    async with stream:
        async for _ in stream:
            break
    assert manager.get_statistics()["running_requests"] == 0
    assert await manager.store.messages("c") == []
    ollama_emu.tokens_per_second = None
    result = await asyncio.wait_for(manager.query(prompt="next", session_id="c"), 5)
    assert result.content.startswith("tok")


async def test_user_stop_keeps_the_partial_turn(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.tokens_per_second = 40
    ollama_emu.set_reply(" ".join(f"w{i}" for i in range(200)))
    stream = await manager.query(prompt="long", stream=True, session_id="c")
    received: list[str] = []
    some_text = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)
            if len(received) >= 3:
                some_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(some_text.wait(), 10)
    stream.request_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert stream.result is not None and stream.result.done_reason == "stopped"
    assert stream.result.content == "".join(received)
    stored = await manager.store.messages("c")
    assert [m["content"] for m in stored] == ["long", "".join(received)]
    assert manager.get_statistics()["running_requests"] == 0


async def test_cancel_without_stop_request_stores_nothing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.tokens_per_second = 40
    ollama_emu.set_reply(" ".join(f"w{i}" for i in range(200)))
    stream = await manager.query(prompt="long", stream=True, session_id="c")

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await manager.store.messages("c") == []


async def test_close_lets_an_answer_in_flight_finish_and_store(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager()
    await manager.start()
    ollama_emu.tokens_per_second = 100
    ollama_emu.set_reply(" ".join(["tok"] * 20))
    task = asyncio.create_task(manager.query(prompt="q", session_id="c"))
    await asyncio.sleep(0.05)  # streaming now
    await manager.close()
    result = await task
    assert result.content.count("tok") == 20
    again = make_manager()
    await again.start()
    assert [m["content"] for m in await again.store.messages("c")] == ["q", result.content]


async def test_close_refuses_a_question_still_waiting_with_a_typed_error(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_concurrent_requests=1)
    await manager.start()
    ollama_emu.tokens_per_second = 100
    ollama_emu.set_reply(" ".join(["tok"] * 20))
    running = asyncio.create_task(manager.query(prompt="q1", session_id="a"))
    waiting = asyncio.create_task(manager.query(prompt="q2", session_id="b"))
    await wait_until(lambda: ollama_emu.active_streams > 0, within=30)  # q2 waits
    await manager.close()
    assert (await running).content.count("tok") == 20
    with pytest.raises(ShuttingDownError):
        await waiting
    chats = [
        r.json["messages"][-1]["content"] for r in ollama_emu.requests if r.path == "/api/chat"
    ]
    assert chats == ["q1"]  # the waiting question never reached the model
    again = make_manager()
    await again.start()
    assert await again.store.messages("b") == []
    await again.close()


async def test_close_past_its_grace_ends_a_running_answer_with_a_typed_error(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    # Its stream is cut when the client closes; the retry finds the client closed (before,
    # httpx's own RuntimeError reached the caller).
    manager = make_manager(max_concurrent_requests=1, max_retries=3, retry_backoff=0.01)
    await manager.start()
    ollama_emu.tokens_per_second = 20
    ollama_emu.set_reply(" ".join(["tok"] * 40))
    running = asyncio.create_task(manager.query(prompt="q1", session_id="a"))
    waiting = asyncio.create_task(manager.query(prompt="q2", session_id="b"))
    await wait_until(lambda: ollama_emu.active_streams > 0, within=30)
    await manager.close(grace=0.1)
    outcomes = await asyncio.gather(running, waiting, return_exceptions=True)
    assert [type(o) for o in outcomes] == [ShuttingDownError, ShuttingDownError]
    again = make_manager()
    await again.start()
    assert await again.store.messages("a") == []
    await again.close()

