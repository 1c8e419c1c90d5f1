"""query(): what reaches Ollama over the wire, what comes back, and what is stored."""

from __future__ import annotations

import json

import pytest

from bot import OllamaQueryResult, OllamaRequestManager
from bot.core.errors import InvalidRequestError
from bot.core.events import QueryEvent, StartedEvent, ThinkingEvent, ToolCallEvent
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator


def chat_bodies(emu: OllamaEmulator) -> list[dict]:
    return [r.json for r in emu.requests if r.path == "/api/chat"]


async def test_query_returns_result_with_stats(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply("Paris is the capital of France.")
    result = await manager.query(prompt="What is the capital of France?")
    assert isinstance(result, OllamaQueryResult)
    assert result.content == "Paris is the capital of France."
    assert result.done and result.done_reason == "stop"
    assert result.eval_count == 6
    assert result.total_duration and result.eval_duration and result.prompt_eval_count
    assert result.fallback_from is None


async def test_stream_yields_chunks_and_result(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply("one two three four")
    stream = await manager.query(prompt="count", stream=True)
    chunks = [c async for c in stream]
    assert len(chunks) == 4
    assert "".join(chunks) == "one two three four"
    assert stream.result is not None and stream.result.content == "one two three four"
    assert stream.result.eval_count == 4


async def test_generation_parameters_reach_ollama(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.query(
        prompt="hi",
        temperature=0.2,
        top_p=0.5,
        top_k=7,
        num_predict=50,
        stop=["END"],
        repeat_penalty=1.3,
        seed=42,
        keep_alive="10m",
        system_prompt="Be terse.",
    )
    body = chat_bodies(ollama_emu)[-1]
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.5,
        "top_k": 7,
        "num_predict": 50,
        "stop": ["END"],
        "repeat_penalty": 1.3,
        "seed": 42,
        "num_ctx": 8192,  # DEFAULT_NUM_CTX: llama3.2 here can take more
    }
    assert body["keep_alive"] == "10m"
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["messages"][-1] == {"role": "user", "content": "hi"}


async def test_only_the_context_window_is_sent_when_nothing_was_chosen(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    # Sampling options nobody chose are left to the model's own parameters.
    await manager.query(prompt="hi")
    body = chat_bodies(ollama_emu)[-1]
    assert body["options"] == {"num_ctx": 8192}
    assert body["keep_alive"] == "5m"
    assert body["model"] == "llama3.2"


async def test_session_history_is_sent_and_stored(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.queue_replies("Python is a language.", "It is readable.")
    await manager.query(prompt="Tell me about Python", session_id="chan-1")
    await manager.query(prompt="Its main features?", session_id="chan-1")
    messages = chat_bodies(ollama_emu)[-1]["messages"]
    assert [m["content"] for m in messages] == [
        "Tell me about Python",
        "Python is a language.",
        "Its main features?",
    ]
    history = await manager.get_session("chan-1")
    assert history is not None
    assert [m["role"] for m in history.get_messages()] == ["user", "assistant"] * 2
    assert history.messages[-1]["content"] == "It is readable."


async def test_sessions_are_isolated(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.query(prompt="secret of A", session_id="a")
    await manager.query(prompt="question of B", session_id="b")
    sent = [m["content"] for m in chat_bodies(ollama_emu)[-1]["messages"]]
    assert sent == ["question of B"]


async def test_session_survives_restart(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    first = make_manager()
    await first.start()
    await first.create_session("persist", system_prompt="You are a pirate.")
    await first.query(prompt="remember 42", session_id="persist")
    await first.close()

    second = make_manager()
    await second.start()
    history = await second.get_session("persist")
    assert history is not None and history.system_prompt == "You are a pirate."
    assert history.messages[0]["content"] == "remember 42"
    await second.query(prompt="what number?", session_id="persist")
    sent = chat_bodies(ollama_emu)[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are a pirate."}
    assert [m["content"] for m in sent[1:]] == ["remember 42", "Echo: remember 42", "what number?"]
    assert second.get_statistics()["active_sessions"] == 1


async def test_session_settings_apply_to_queries(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.update_session_settings(
        "s", model="qwen3", system_prompt="Rhyme.", options={"temperature": 0.1, "num_ctx": 4096}
    )
    await manager.query(prompt="hello", session_id="s")
    body = chat_bodies(ollama_emu)[-1]
    assert body["model"] == "qwen3"
    assert body["messages"][0]["content"] == "Rhyme."
    assert body["options"]["temperature"] == 0.1 and body["options"]["num_ctx"] == 4096
    await manager.query(prompt="hello", session_id="s", model="llama3.2", temperature=0.9)
    body = chat_bodies(ollama_emu)[-1]
    assert body["model"] == "llama3.2" and body["options"]["temperature"] == 0.9


async def test_history_window_respects_length(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    # Without the running summary, which would join what falls out of the window.
    manager = make_manager(max_history_length=4, conversation_memory=False)
    await manager.start()
    for i in range(5):
        await manager.query(prompt=f"q{i}", session_id="w")
    sent = [m["content"] for m in chat_bodies(ollama_emu)[-1]["messages"]]
    # Four messages would open on q2's orphaned answer, so the window starts at q3.
    assert sent == ["q3", "Echo: q3", "q4"]


async def test_history_window_respects_token_budget(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_history_tokens=60, default_system_prompt="sys")
    await manager.start()
    for i in range(6):
        await manager.query(prompt=f"question {i} " + "x" * 40, session_id="t")
    sent = chat_bodies(ollama_emu)[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "sys"}
    assert sent[1]["role"] == "user"
    assert sent[-1]["content"].startswith("question 5")
    assert len(sent) < 1 + 11


async def test_explicit_messages_bypass_history(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.query(prompt="old", session_id="m")
    await manager.query(
        messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        prompt="c",
        session_id="m",
    )
    sent = [m["content"] for m in chat_bodies(ollama_emu)[-1]["messages"]]
    assert sent == ["a", "b", "c"]


async def test_documents_and_extra_context_are_given_to_the_model(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.query(
        prompt="When was it founded?",
        documents=["Founded in 2020 by Jane.", "50 employees."],
        extra_context="Company: Acme",
    )
    content = chat_bodies(ollama_emu)[-1]["messages"][-1]["content"]
    assert "[1] Founded in 2020 by Jane." in content and "[2] 50 employees." in content
    assert "Company: Acme" in content
    assert content.rstrip().endswith("When was it founded?")


@pytest.mark.parametrize("fmt", ["json", {"type": "object", "required": ["name"]}])
async def test_json_format(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator, fmt: object
) -> None:
    result = await manager.query(prompt="give json", format=fmt)  # type: ignore[arg-type]
    assert chat_bodies(ollama_emu)[-1]["format"] == fmt
    assert isinstance(json.loads(result.content), dict)


async def test_text_format_sends_no_format(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.query(prompt="plain", format="text")
    assert "format" not in chat_bodies(ollama_emu)[-1]


async def test_thinking_is_reported_but_never_stored(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_thinking("Let me think about this carefully.")
    ollama_emu.set_reply("42")
    events: list[QueryEvent] = []
    result = await manager.query(
        prompt="meaning?", model="qwen3", think=True, session_id="th", on_event=events.append
    )
    assert result.content == "42"
    assert result.thinking == "Let me think about this carefully."
    thought = "".join(e.text for e in events if isinstance(e, ThinkingEvent))
    assert thought == "Let me think about this carefully."
    assert isinstance(events[0], StartedEvent)
    history = await manager.get_session("th")
    assert history is not None
    assert all("think" not in m["content"] for m in history.messages)
    assert chat_bodies(ollama_emu)[-1]["think"] is True


async def test_tool_calls_are_returned_and_reported(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ollama_emu.queue_tool_calls([call])
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    events: list[QueryEvent] = []
    result = await manager.query(prompt="weather?", tools=tools, on_event=events.append)
    assert result.tool_calls == [call]
    assert any(isinstance(e, ToolCallEvent) for e in events)
    assert chat_bodies(ollama_emu)[-1]["tools"][0]["function"]["name"] == "get_weather"


async def test_tool_choice_none_withholds_tools(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await manager.query(prompt="x", tools=tools, tool_choice="none")
    assert not chat_bodies(ollama_emu)[-1].get("tools")  # the client always sends a list


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "prompt"),
        ({"prompt": "   "}, "empty"),
        ({"prompt": "x", "temperature": 3.0}, "temperature"),
        ({"prompt": "x", "top_p": -0.1}, "top_p"),
        ({"prompt": "x", "format": "yaml"}, "format"),
        ({"prompt": "x", "timeout_ms": 0}, "timeout_ms"),
        ({"prompt": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"prompt": "x" * 500_000}, "too long"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ],
)
async def test_bad_input_is_refused_before_ollama(
    manager: OllamaRequestManager,
    ollama_emu: OllamaEmulator,
    kwargs: dict,
    fragment: str,
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await manager.query(**kwargs)
    assert fragment in info.value.user_message
    assert chat_bodies(ollama_emu) == []


async def test_metadata_is_kept_on_the_result(manager: OllamaRequestManager) -> None:
    result = await manager.query(prompt="x", metadata={"user_id": "123"})
    assert result.metadata["user_id"] == "123"
    assert result.metadata["attempts"] == 1
