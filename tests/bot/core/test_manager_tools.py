"""The tool loop and structured answers through OllamaRequestManager, against the Ollama
emulator: what goes over the wire each round, what the caller gets, what is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import pytest

from bot import OllamaRequestManager
from bot.core.errors import InvalidRequestError, StructuredOutputError
from bot.core.events import QueryEvent, RetryEvent, ToolRunEvent
from bot.core.tools.registry import Tool, ToolContext, ToolSet
from tests.conftest import ManagerFactory
from tests.emulators.ollama_models import EmulatedModel, RecordedRequest
from tests.emulators.ollama_server import OllamaEmulator

WAIT = 10.0  # seconds any wait may take before the test fails
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


# helpers ------------------------------------------------------------------------------------
def chats(emu: OllamaEmulator, since: int = 0) -> list[RecordedRequest]:
    return [r for r in emu.requests[since:] if r.path == "/api/chat"]


def tool(name: str, handler: Any, *, timeout: float = 5.0) -> Tool:
    return Tool(
        name=name,
        description=f"The {name} tool of the tests.",
        parameters={"type": "object", "properties": {"label": {"type": "string"}}},
        handler=handler,
        timeout=timeout,
    )


class Gate:
    """A tool whose calls wait until ``expected`` of them are running at once: concurrent
    calls all get through; calls run one after the other would each wait in vain."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.running = 0
        self.peak = 0
        self.labels: list[str] = []
        self._all_in = asyncio.Event()

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.labels.append(str(arguments.get("label")))
        if self.running >= self.expected:
            self._all_in.set()
        try:
            await asyncio.wait_for(self._all_in.wait(), WAIT)
        finally:
            self.running -= 1
        return f"probed {arguments.get('label')} in {context.session_id}"


class Blocker:
    """A tool that runs until cancelled; ``entered`` once it runs."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled = False

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> str:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "unreachable"


async def failing(arguments: dict[str, Any], context: ToolContext) -> str:
    raise RuntimeError("the disk is on fire")


def with_tools(manager: OllamaRequestManager, *tools: Tool, session_id: str = "s") -> ToolSet:
    """The tools, and the calculator, as the bot selects them for a conversation."""
    for t in tools:
        manager.tools.add(t)
    names = [t.name for t in tools] + ["calculator"]
    return manager.tools.select(names, ToolContext(session_id=session_id))


def without_system(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("role") != "system"]


# the loop ------------------------------------------------------------------------------------
async def test_two_rounds_with_concurrent_calls_and_the_stored_turn(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    gate = Gate(expected=2)
    toolset = with_tools(manager, tool("probe", gate))
    ollama_emu.script_tools(
        [
            [("probe", {"label": "a"}), ("probe", {"label": "b"})],
            [("calculator", {"expression": "6*7"})],
        ],
        final="I found: {tools}",
    )
    events: list[QueryEvent] = []
    result = await manager.ask(
        prompt="Probe a and b, then compute.",
        session_id="s",
        toolset=toolset,
        on_event=events.append,
    )

    assert gate.peak == 2 and sorted(gate.labels) == ["a", "b"]  # one round, both at once
    first, second, third = chats(ollama_emu)
    assert first.tool_names == second.tool_names == third.tool_names == ["probe", "calculator"]
    assert second.tool_messages == [
        {"role": "tool", "content": "probed a in s", "tool_name": "probe"},
        {"role": "tool", "content": "probed b in s", "tool_name": "probe"},
    ]
    assert third.tool_messages[-1] == {
        "role": "tool",
        "content": "6*7 = 42",
        "tool_name": "calculator",
    }
    assert result.content == "I found: probed a in s; probed b in s; 6*7 = 42"
    assert result.tools_used == ["probe", "probe", "calculator"]
    assert not result.tools_unavailable
    assert [e.names for e in events if isinstance(e, ToolRunEvent)] == [
        ("probe", "probe"),
        ("calculator",),
    ]
    assert manager.get_statistics()["tools_usage"] == {"probe": 2, "calculator": 1}

    stored = await manager.store.messages("s")
    assert [(m["role"], m.get("tool_name")) for m in stored] == [
        ("user", None),
        ("assistant", None),
        ("tool", "probe"),
        ("tool", "probe"),
        ("assistant", None),
        ("tool", "calculator"),
        ("assistant", None),
    ]
    assert stored[0]["content"] == "Probe a and b, then compute."
    assert [c["function"]["name"] for c in stored[1]["tool_calls"]] == ["probe", "probe"]
    assert [c["function"]["arguments"] for c in stored[1]["tool_calls"]] == [
        {"label": "a"},
        {"label": "b"},
    ]
    assert [c["function"]["name"] for c in stored[4]["tool_calls"]] == ["calculator"]
    assert stored[5]["content"] == "6*7 = 42"
    assert stored[-1] == {"role": "assistant", "content": result.content}

    # The next question carries the whole exchange, as the model saw it the first time.
    ollama_emu.clear_tool_scripts()
    ollama_emu.set_reply("Noted.")
    await manager.ask(prompt="Thanks.", session_id="s")
    history = without_system(chats(ollama_emu)[-1].messages)
    assert history[:-1] == [*without_system(third.messages), stored[-1]]
    assert history[-1] == {"role": "user", "content": "Thanks."}
    assert [(m["role"], m.get("tool_name")) for m in history[:-1]] == [
        (m["role"], m.get("tool_name")) for m in stored
    ]


async def test_streamed_tool_answer_yields_only_the_final_text(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    toolset = manager.tools.select(["calculator"])
    ollama_emu.script_tools([[("calculator", {"expression": "2+2"})]], final="It is {tools}.")
    stream = manager.stream(prompt="2+2?", toolset=toolset)
    chunks = [chunk async for chunk in stream]
    assert "".join(chunks) == "It is 2+2 = 4."
    assert stream.result is not None and stream.result.tools_used == ["calculator"]


async def test_the_last_round_offers_no_tools(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_tool_rounds=2)
    await manager.start()
    toolset = manager.tools.select(["calculator"])
    ollama_emu.script_tools(
        [[("calculator", {"expression": f"{n}+1"})] for n in range(5)], final="Done: {tools}"
    )
    result = await manager.ask(prompt="Keep counting.", toolset=toolset)

    requests = chats(ollama_emu)
    assert [r.tool_names for r in requests] == [["calculator"], ["calculator"], []]
    assert not (requests[-1].json or {}).get("tools")
    assert len(requests[-1].tool_messages) == 2  # both rounds' results went back
    assert result.tools_used == ["calculator", "calculator"]
    assert result.content == "Done: 0+1 = 1; 1+1 = 2"


async def test_a_failing_and_a_slow_tool_become_errors_the_model_reads(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    slow = Blocker()
    toolset = with_tools(manager, tool("broken", failing), tool("slow", slow, timeout=0.2))
    ollama_emu.script_tools(
        [[("broken", {}), ("slow", {}), ("calculator", {"expression": "1+1"})]],
        final="Despite it all: {tools}",
    )
    result = await manager.ask(prompt="Try everything.", session_id="s", toolset=toolset)

    sent = chats(ollama_emu)[-1].tool_messages
    assert sent == [
        {"role": "tool", "content": "Error: the disk is on fire", "tool_name": "broken"},
        {
            "role": "tool",
            "content": "Error: the tool did not answer within 0.2 s.",
            "tool_name": "slow",
        },
        {"role": "tool", "content": "1+1 = 2", "tool_name": "calculator"},
    ]
    assert slow.cancelled
    assert result.content.startswith("Despite it all: Error: the disk is on fire;")
    assert manager.stats.tool_outcomes == {
        ("broken", "error"): 1,
        ("slow", "timeout"): 1,
        ("calculator", "ok"): 1,
    }
    stored = await manager.store.messages("s")
    assert stored[-1]["content"] == result.content


async def test_a_call_to_a_tool_the_bot_does_not_run(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    # The model can only call what the request offered: here the caller offered a tool of
    # its own beside the bot's, which the bot then cannot run.
    ghost = {
        "type": "function",
        "function": {"name": "ghost", "description": "?", "parameters": {"type": "object"}},
    }
    toolset = manager.tools.select(["calculator"])
    ollama_emu.script_tools([[("ghost", {"x": 1})]], final="After: {tool:ghost}")
    result = await manager.ask(prompt="Call the ghost.", toolset=toolset, tools=[ghost])

    [sent] = chats(ollama_emu)[-1].tool_messages
    assert sent["tool_name"] == "ghost"
    assert sent["content"] == "Error: there is no tool named 'ghost' (tools: calculator)."
    assert result.content == f"After: {sent['content']}"
    # The name is the model's: counted apart, so made-up names cannot grow the statistics.
    assert manager.get_statistics()["tools_usage"] == {"(unknown)": 1}
    assert manager.stats.tool_outcomes == {("(unknown)", "unknown"): 1}


async def test_a_model_without_tools_gets_none(
    make_manager: ManagerFactory, database_url: str
) -> None:
    plain = EmulatedModel("plain:latest", capabilities=("completion",))
    async with OllamaEmulator(models=[plain]) as emu:
        manager = make_manager(host=emu.url, default_model="plain")
        await manager.start()
        emu.script_tools([[("calculator", {"expression": "1+1"})]])
        emu.set_reply("I cannot use tools.")
        result = await manager.ask(
            prompt="Add.", session_id="s", toolset=manager.tools.select(["calculator"])
        )
        [request] = chats(emu)
        assert not (request.json or {}).get("tools")
        assert result.tools_unavailable and result.tools_used == []
        assert result.content == "I cannot use tools."


async def test_stop_while_a_tool_runs_stores_nothing_unsaid(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    blocker = Blocker()
    toolset = with_tools(manager, tool("block", blocker))
    ollama_emu.script_tools(
        [[("calculator", {"expression": "1+1"})], [("block", {})]], final="never"
    )
    stream = manager.stream(prompt="Go.", session_id="s", toolset=toolset)
    task = asyncio.create_task(stream.collect())
    await asyncio.wait_for(blocker.entered.wait(), WAIT)
    stream.request_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert blocker.cancelled
    assert len(chats(ollama_emu)) == 2  # no third round was asked for
    # The model had said nothing yet: there is no answer to keep.
    assert stream.result is None
    assert await manager.store.messages("s") == []
    assert manager.get_statistics()["running_requests"] == 0


async def test_stop_during_the_answer_after_tools_keeps_what_was_said(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    toolset = manager.tools.select(["calculator"])
    final = "The result is {tools} " + " ".join(f"w{i}" for i in range(200))
    ollama_emu.script_tools([[("calculator", {"expression": "3*3"})]], final=final)
    ollama_emu.tokens_per_second = 40
    stream = manager.stream(prompt="3*3?", session_id="s", toolset=toolset)
    received: list[str] = []
    some_text = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)
            if len(received) >= 3:
                some_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(some_text.wait(), WAIT)
    stream.request_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    said = "".join(received)
    assert said.startswith("The result is")
    assert stream.result is not None and stream.result.done_reason == "stopped"
    assert stream.result.content == said and stream.result.tools_used == ["calculator"]
    stored = await manager.store.messages("s")
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "3*3?"),
        ("assistant", ""),
        ("tool", "3*3 = 9"),
        ("assistant", said),
    ]
    assert stored[1]["tool_calls"][0]["function"]["name"] == "calculator"


# structured answers -------------------------------------------------------------------------
async def test_json_format_gives_parsed_json(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply('{"answer": 42}')
    result = await manager.ask(prompt="JSON please.", format="json", session_id="s")
    assert chats(ollama_emu)[-1].json["format"] == "json"  # type: ignore[index]
    assert result.parsed == {"answer": 42}
    stored = await manager.store.messages("s")
    assert json.loads(stored[-1]["content"]) == {"answer": 42}


async def test_a_schema_answer_is_valid(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    result = await manager.ask(prompt="A city.", format=CITY_SCHEMA)
    [request] = chats(ollama_emu)
    assert request.json["format"] == CITY_SCHEMA  # type: ignore[index]
    assert isinstance(result.parsed["city"], str)
    assert isinstance(result.parsed["population"], int)


async def test_an_answer_missing_its_schema_once_is_asked_again(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.violate_schema(1, mode="missing")
    events: list[QueryEvent] = []
    result = await manager.ask(
        prompt="A city.", format=CITY_SCHEMA, session_id="s", on_event=events.append
    )
    first, second = chats(ollama_emu)
    assert first.json == second.json  # the same question again
    assert set(result.parsed) == {"city", "population"}
    [retry] = [e for e in events if isinstance(e, RetryEvent)]
    assert "'city' is a required property" in retry.error
    stored = await manager.store.messages("s")
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert json.loads(stored[-1]["content"]) == result.parsed


async def test_an_answer_missing_its_schema_twice_is_refused(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.violate_schema(2, mode="type")
    with pytest.raises(StructuredOutputError) as caught:
        await manager.ask(prompt="A city.", format=CITY_SCHEMA, session_id="s")
    assert len(chats(ollama_emu)) == 2
    assert caught.value.errors == ["at $.city: 0 is not of type 'string'"]
    assert caught.value.errors[0] in caught.value.user_message
    assert await manager.store.messages("s") == []
    assert manager.get_statistics()["failed_requests"] == 1


async def test_an_invalid_schema_is_refused_before_asking(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    with pytest.raises(InvalidRequestError, match="The JSON schema is invalid"):
        manager.stream(prompt="A city.", format={"type": "town"}, session_id="s")
    with pytest.raises(InvalidRequestError):
        await manager.ask(prompt="A city.", format={"type": 12})
    assert chats(ollama_emu) == []
