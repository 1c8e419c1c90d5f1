"""Tool calls in the Ollama emulator, driven through the official client.

What a client receives is decided by the port of Ollama 0.12.6's tool parser
(ollama_toolparse), so the first tests check that port against cases from the Go tests
(tools/tools_test.go at v0.12.6); the others check the conversation scripting on top.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import ollama
import pytest

from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator, ToolCall
from tests.emulators.ollama_testing import collect
from tests.emulators.ollama_toolparse import ToolParser

USER_HI = [{"role": "user", "content": "hi"}]


def tool(name: str, **properties: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {k: {"type": v} for k, v in properties.items()}}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


WEATHER = tool("get_weather", city="string")
TIME = tool("time.get_current_time", timezone="string")
TOOLS = [WEATHER, TIME]


def calls_of(message: ollama.Message) -> list[tuple[str, dict[str, Any]]]:
    return [(c.function.name, dict(c.function.arguments)) for c in message.tool_calls or []]


# -- the parser port against the Go tests ----------------------------------------------------
GO_TOOLS = ["get_temperature", "get_conditions", "say_hello", "say_hello_world", "add"]
QWEN_CALL = '<tool_call>{"name": "get_temperature", "arguments": {"city": "New York"}}</tool_call>'


@pytest.mark.parametrize(
    ("tag", "inputs", "content", "names"),
    [
        (
            "<tool_call>",
            ["Hello, how can I help you today?"],
            "Hello, how can I help you today?",
            [],
        ),
        ("<tool_call>", ["Let me check. " + QWEN_CALL], "Let me check. ", ["get_temperature"]),
        (
            "<tool_call>",
            ["<tool_call>", "{", '"name": "say_hello', '_world",', '"arguments": {}}', "}"],
            "",
            ["say_hello_world"],
        ),
        (
            "{",
            ["{", '"name": "get_temperature",', '"arguments": {', '"city": "Tokyo"', "}", "}"],
            "",
            ["get_temperature"],
        ),
        (
            "{",
            ["{", '"name": "search", ', '"arguments": {', '"query": "Capital?"', "}", "}"],
            '{"name": "search", "arguments": {"query": "Capital?"}}',
            [],
        ),
        (
            "{",
            ['{"name": "jeff"}', '{"name": "get_conditions", "arguments": {"location": "SF"}}'],
            '{"name": "jeff"}{"name": "get_conditions", "arguments": {"location": "SF"}}',
            [],
        ),
        (
            "[",
            [
                "[",
                '{"name": "get_temperature", "arguments": {"city": "London"}},',
                '{"name": "get_conditions", "arguments": {}}]',
            ],
            "",
            ["get_temperature", "get_conditions"],
        ),
        ("[", ["[special", " del", "ivery]"], "[special delivery]", []),
        ("{", ['for { fmt.Println("hello") }'], 'for { fmt.Println("hello") }', []),
    ],
)
def test_the_parser_port_agrees_with_the_go_tests(
    tag: str, inputs: Sequence[str], content: str, names: list[str]
) -> None:
    parser = ToolParser(tag, GO_TOOLS)
    calls, text = [], ""
    for chunk in inputs:
        found, passed = parser.add(chunk)
        calls += found
        text += passed
    assert text == content
    assert [c["function"]["name"] for c in calls] == names
    assert [c["function"]["index"] for c in calls] == list(range(len(names)))


# -- the wire ------------------------------------------------------------------------------
async def test_a_tool_call_is_one_chunk_with_an_index_then_the_done_line(
    emu: OllamaEmulator, raw: httpx.AsyncClient
) -> None:
    emu.queue_tool_calls([("get_weather", {"city": "Paris"})])
    body = {"model": "llama3.2", "messages": USER_HI, "tools": TOOLS}
    response = await raw.post("/api/chat", json=body)
    lines = [json.loads(line) for line in response.text.splitlines()]
    call, last = lines
    # api.ToolCallFunction at v0.12.6: index (never omitted), name, arguments; no id.
    assert call["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    }
    assert call["done"] is False
    assert last["done"] is True and last["message"] == {"role": "assistant", "content": ""}
    # The model wrote the call as text: every token of it counts.
    assert last["eval_count"] == 5 and last["prompt_eval_count"] > 0


@pytest.mark.parametrize("model", ["llama3.2", "qwen3"])
async def test_several_calls_in_one_round_stream_one_by_one(
    emu: OllamaEmulator, client: ollama.AsyncClient, model: str
) -> None:
    two = [("get_weather", {"city": "Oslo"}), ("time.get_current_time", {"timezone": "UTC"})]
    emu.queue_tool_calls(two)
    chunks = [c async for c in await client.chat(model, USER_HI, tools=TOOLS, stream=True)]
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert [calls_of(c.message) for c in with_calls] == [[two[0]], [two[1]]]
    assert all(c.message.content == "" for c in chunks) and chunks[-1].done

    emu.queue_tool_calls(two)
    whole = await client.chat(model, USER_HI, tools=TOOLS)
    assert calls_of(whole.message) == two and whole.message.content == ""


async def test_a_model_without_tools_is_refused_before_anything_runs() -> None:
    async with (
        OllamaEmulator([EmulatedModel("plain")]) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        emu.script_tools([[("get_weather", {"city": "Oslo"})]])
        with pytest.raises(ollama.ResponseError) as caught:
            [c async for c in await client.chat("plain", USER_HI, tools=TOOLS, stream=True)]
        assert emu.loaded == {}
    # scheduleRunner: "<full name> does not support tools", a 400.
    assert caught.value.status_code == 400
    assert caught.value.error == "registry.ollama.ai/library/plain:latest does not support tools"


# -- scripted conversations ----------------------------------------------------------------
async def test_a_scripted_conversation_follows_the_messages(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.script_tools(
        rounds=[
            [("time.get_current_time", {"timezone": "UTC"})],
            [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})],
        ],
        final="At {tool:time.get_current_time} it is {tool:get_weather}. All: {tools}",
    )
    messages: list[Any] = [{"role": "user", "content": "Time and weather?"}]
    first = await client.chat("llama3.2", messages, tools=TOOLS)
    assert calls_of(first.message) == [("time.get_current_time", {"timezone": "UTC"})]
    messages += [
        first.message,
        {"role": "tool", "content": "12:00", "tool_name": "time.get_current_time"},
    ]
    second = await client.chat("llama3.2", messages, tools=TOOLS)
    assert [name for name, _ in calls_of(second.message)] == ["get_weather", "get_weather"]
    messages += [
        second.message,
        {"role": "tool", "content": "rain in Oslo", "tool_name": "get_weather"},
        {"role": "tool", "content": "sun in Rome", "tool_name": "get_weather"},
    ]
    final = await client.chat("llama3.2", messages, tools=TOOLS)
    assert final.message.content == (
        "At 12:00 it is sun in Rome. All: 12:00; rain in Oslo; sun in Rome"
    )
    assert not final.message.tool_calls

    last = emu.requests[-1]
    assert last.tool_names == ["get_weather", "time.get_current_time"]
    assert last.tools == TOOLS
    assert [(m["tool_name"], m["content"]) for m in last.tool_messages] == [
        ("time.get_current_time", "12:00"),
        ("get_weather", "rain in Oslo"),
        ("get_weather", "sun in Rome"),
    ]
    # A new question starts the script again.
    again = await client.chat("llama3.2", [*messages, *USER_HI], tools=TOOLS)
    assert calls_of(again.message) == [("time.get_current_time", {"timezone": "UTC"})]


async def test_results_without_tool_name_are_matched_to_the_calls_in_order(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.script_tools(
        [[("get_weather", {"city": "Oslo"}), ToolCall("time.get_current_time")]],
        final="{tool:time.get_current_time} / {tool:get_weather} / {tool:nothing}",
    )
    first = await client.chat("qwen3", USER_HI, tools=TOOLS)
    messages = [*USER_HI, first.message, {"role": "tool", "content": "cold"}]
    messages.append({"role": "tool", "content": "noon"})
    # Results sent back without tools: the model can only answer.
    final = await client.chat("qwen3", messages)
    assert final.message.content == "noon / cold / <no result from nothing>"


async def test_a_script_for_one_model_leaves_the_others_alone(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.script_tools([[("get_weather", {"city": "Oslo"})]], model="qwen3")
    emu.script_tools([], final=lambda body: f"{len(body['messages'])} messages", model=None)
    scripted = await client.chat("qwen3:latest", USER_HI, tools=TOOLS)
    assert calls_of(scripted.message) == [("get_weather", {"city": "Oslo"})]
    other = await client.chat("llama3.2", USER_HI, tools=TOOLS)
    assert other.message.content == "1 messages"
    emu.clear_tool_scripts()
    assert (await client.chat("qwen3", USER_HI, tools=TOOLS)).message.content == "Echo: hi"
    assert (await client.chat("qwen3", USER_HI)).message.content == "Echo: hi"  # no tools


# -- what the parser makes of bad calls ---------------------------------------------------
async def test_a_call_to_a_tool_not_offered_never_becomes_a_call(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.script_tools([[("launch_rockets", {"count": 3})]])
    # llama3.2's bare JSON: the parser gives it up and passes the text on.
    llama = await client.chat("llama3.2", USER_HI, tools=TOOLS)
    assert not llama.message.tool_calls
    assert llama.message.content == '{"name": "launch_rockets", "parameters": {"count": 3}}'
    # qwen3's tagged call is held back for good: an empty answer.
    qwen = await client.chat("qwen3", USER_HI, tools=TOOLS)
    assert not qwen.message.tool_calls and qwen.message.content == ""
    assert qwen.eval_count and qwen.eval_count > 0


@pytest.mark.parametrize(
    ("arguments", "llama_text"),
    [
        ("{'city': 'Paris'}", """{"name": "get_weather", "parameters": {'city': 'Paris'}}"""),
        ('{"city": "Paris"', '{"name": "get_weather", "parameters": {"city": "Paris"}'),
        ('"city=Paris"', '{"name": "get_weather", "parameters": "city=Paris"}'),
    ],
)
async def test_malformed_arguments_never_become_a_call(
    emu: OllamaEmulator, client: ollama.AsyncClient, arguments: str, llama_text: str
) -> None:
    emu.queue_tool_calls([ToolCall("get_weather", arguments)])
    emu.queue_tool_calls([ToolCall("get_weather", arguments)])
    llama = await client.chat("llama3.2", USER_HI, tools=TOOLS)
    assert not llama.message.tool_calls and llama.message.content == llama_text
    qwen = await client.chat("qwen3", USER_HI, tools=TOOLS)
    assert not qwen.message.tool_calls and qwen.message.content == ""


async def test_arguments_as_a_json_string_are_decoded(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    # Some models quote the arguments; findArguments decodes a string holding an object.
    emu.queue_tool_calls([ToolCall("get_weather", json.dumps(json.dumps({"city": "Oslo"})))])
    answer = await client.chat("qwen3", USER_HI, tools=TOOLS)
    assert calls_of(answer.message) == [("get_weather", {"city": "Oslo"})]


async def test_text_answers_with_tools_pass_through_the_parser(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("Plain words, no call.")
    for model in ("llama3.2", "qwen3"):
        answer = await client.chat(model, USER_HI, tools=TOOLS)
        assert answer.message.content == "Plain words, no call." and not answer.message.tool_calls


async def test_thinking_comes_before_the_calls(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_thinking("I should look it up.")
    emu.queue_tool_calls([("get_weather", {"city": "Oslo"})])
    chunks = [
        c async for c in await client.chat("qwen3", USER_HI, tools=TOOLS, think=True, stream=True)
    ]
    kinds = [
        "thinking" if c.message.thinking else "calls" if c.message.tool_calls else "other"
        for c in chunks
    ]
    assert kinds[: kinds.index("calls") + 1] == ["thinking"] * kinds.index("calls") + ["calls"]
    assert "".join(c.message.thinking or "" for c in chunks) == "I should look it up."


async def test_tool_calls_go_to_the_next_request_with_tools(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.queue_tool_calls([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    emu.queue_tool_calls([{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    without_tools = await client.chat("llama3.2", USER_HI)
    assert without_tools.message.content == "Echo: hi" and not without_tools.message.tool_calls

    called = await client.chat("llama3.2", USER_HI, tools=[WEATHER])
    assert called.message.content == ""
    assert called.message.tool_calls is not None
    call = called.message.tool_calls[0].function
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})

    chunks, error = await collect(
        await client.chat("llama3.2", USER_HI, tools=[WEATHER], stream=True)
    )
    assert error is None
    streamed = [tc for c in chunks for tc in c.message.tool_calls or []]
    assert [dict(tc.function.arguments) for tc in streamed] == [{"city": "Oslo"}]
    assert chunks[-1].done

    after = await client.chat("llama3.2", USER_HI, tools=[WEATHER])
    assert after.message.content == "Echo: hi" and not after.message.tool_calls
