"""Routing questions over several Ollama emulators: model placement, the warm host first,
then the most free slots; each host's own cap; a full host holding back nobody else."""

from __future__ import annotations

import asyncio

import ollama

from bot.core.events import QueryEvent, QueuedEvent
from tests.bot.core.hosts.conftest import chats, host_of, only, questions, spread_over
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import wait_until


async def test_a_model_only_on_one_host_is_asked_there(database_url: str) -> None:
    async with (
        OllamaEmulator(only("llama3.2")) as a,
        OllamaEmulator(only("qwen3")) as b,
        spread_over(database_url, [(a, None), (b, None)]) as manager,
    ):
        on_b = await manager.ask(prompt="where?", model="qwen3")
        on_a = await manager.ask(prompt="and here?")
    assert (on_b.content, on_a.content) == ("Echo: where?", "Echo: and here?")
    assert [c["model"] for c in chats(a)] == ["llama3.2"]
    assert [c["model"] for c in chats(b)] == ["qwen3"]


async def test_a_host_with_the_model_loaded_wins_over_more_free_slots(database_url: str) -> None:
    async with OllamaEmulator() as a, OllamaEmulator() as b:
        # Loaded on b before the bot starts: its /api/ps says so.
        loader = ollama.AsyncClient(host=b.url)
        await loader.chat(model="llama3.2", messages=[])
        await loader.close()
        async with spread_over(database_url, [(a, 4), (b, 1)]) as manager:
            assert host_of(manager, b).is_warm("llama3.2")
            await manager.ask(prompt="warm?")
            # qwen3 is loaded nowhere: the most free slots decide.
            await manager.ask(prompt="cold?", model="qwen3")
    assert questions(b) == ["warm?"]
    assert questions(a) == ["cold?"]


async def test_the_host_with_the_most_free_slots_is_asked_first(database_url: str) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 4)]) as manager,
    ):
        await manager.ask(prompt="first")
    assert chats(a) == []
    assert questions(b) == ["first"]


async def test_each_host_keeps_its_own_cap(database_url: str) -> None:
    async with OllamaEmulator() as a, OllamaEmulator() as b:
        for emu in (a, b):
            emu.tokens_per_second = 200
            emu.set_reply("one two three four five six seven eight")
        async with spread_over(database_url, [(a, 1), (b, 2)]) as manager:
            results = await asyncio.gather(
                *(manager.ask(prompt=f"q{i}", session_id=f"s{i}") for i in range(9))
            )
            assert manager.queue.running == 0 and manager.queue.depth == 0
    assert all(r.content == "one two three four five six seven eight" for r in results)
    assert (a.max_active_seen, b.max_active_seen) == (1, 2)
    assert len(chats(a)) + len(chats(b)) == 9
    assert chats(a) and chats(b)  # both worked


async def test_a_full_host_does_not_hold_back_a_question_another_can_answer(
    database_url: str,
) -> None:
    async with (
        OllamaEmulator(only("llama3.2")) as a,
        OllamaEmulator(only("qwen3")) as b,
        spread_over(database_url, [(a, 1), (b, 1)], first_token_timeout=60.0) as manager,
    ):
        a.stall_before_first_token(60)
        holding = asyncio.create_task(manager.ask(prompt="slow"))
        await wait_until(lambda: host_of(manager, a).active == 1)
        events: list[QueryEvent] = []
        behind = asyncio.create_task(manager.ask(prompt="next on a", on_event=events.append))
        await wait_until(lambda: QueuedEvent(1, "capacity") in events)
        # b answers while a's queue waits.
        answered = await asyncio.wait_for(manager.ask(prompt="quick", model="qwen3"), 10)
        assert answered.content == "Echo: quick"
        assert not behind.done()
        assert [r.queued for r in manager.host_reports()] == [1, 0]
        for task in (holding, behind):
            task.cancel()
        await asyncio.gather(holding, behind, return_exceptions=True)
    assert questions(a) == ["slow"]
