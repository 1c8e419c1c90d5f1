"""The request manager on real tokens: what it returns, streams and stores is what the
model wrote, its counts are the server's, and what it sends fits the window it asks for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from bot import OllamaRequestManager
from bot.core.tools.registry import Tool, ToolContext, ToolSet
from tests.real_model.conftest import needs
from tests.real_model.decoding import CANCELLED
from tests.real_model.models import GEMMA3, SMOLLM2

if TYPE_CHECKING:
    from tests.real_model.engine import Engine
    from tests.real_model.server import RealModelServer

pytestmark = pytest.mark.real_model

SHORT = {"num_predict": 16, "temperature": 0.0, "seed": 11}
PROSE = (
    "The committee met on a grey morning to discuss the harbour, the ferries, the new bridge "
    "and the long list of repairs that the old market hall has needed for many years. "
)


@pytest.fixture
async def manager(
    real_ollama: RealModelServer, database_url: str
) -> AsyncIterator[OllamaRequestManager]:
    manager = OllamaRequestManager(
        host=real_ollama.url,
        default_model=SMOLLM2,
        database_url=database_url,
        embedding_model=SMOLLM2,
        first_token_timeout=120.0,
        stream_idle_timeout=60.0,
        request_timeout=300.0,
    )
    await manager.start()
    yield manager
    await manager.close()


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
async def test_a_streamed_answer_is_what_the_model_wrote_and_is_stored_whole(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine, model: str
) -> None:
    needs(engine, model)
    stream = await manager.query(
        prompt="Say hello to the harbour.", model=model, stream=True, session_id="s", **SHORT
    )
    chunks = [chunk async for chunk in stream]
    result = stream.result
    (gen,) = real_ollama.generations
    assert result is not None and "".join(chunks) == result.content == gen.content
    assert result.eval_count == gen.eval_count and result.prompt_eval_count == gen.prompt_tokens
    assert result.done_reason == gen.done_reason
    stored = [(m["role"], m["content"]) for m in await manager.store.messages("s")]
    assert stored == [("user", "Say hello to the harbour."), ("assistant", gen.content)]


async def test_history_reaches_the_model_in_its_template(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    first = await manager.query(prompt="My name is Ada.", session_id="h", **SHORT)
    await manager.query(prompt="What is my name?", session_id="h", **SHORT)
    one, two = real_ollama.generations
    assert [m["content"] for m in two.messages if m["role"] != "system"] == [
        "My name is Ada.",
        first.content,
        "What is my name?",
    ]
    turn = f"<|im_start|>user\nMy name is Ada.<|im_end|>\n<|im_start|>assistant\n{first.content}"
    assert turn in two.prompt and two.prompt_tokens > one.prompt_tokens


async def test_a_user_stop_ends_generation_and_keeps_what_was_said(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    stream = await manager.query(
        prompt="Tell a long story about the sea.",
        session_id="stop",
        stream=True,
        num_predict=400,
        temperature=0.7,
        seed=5,
    )
    received: list[str] = []
    some = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)
            if len(received) >= 3:
                some.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(some.wait(), 120)
    stream.request_stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    (gen,) = real_ollama.generations
    await asyncio.wait_for(gen.finished.wait(), 60)
    # The server saw the client go and stopped sampling, well before num_predict.
    assert gen.done_reason == CANCELLED and gen.eval_count < 400
    assert stream.result is not None and stream.result.content == "".join(received)
    assert gen.content.startswith(stream.result.content)
    stored = [m["content"] for m in await manager.store.messages("stop")]
    assert stored == ["Tell a long story about the sea.", "".join(received)]


async def test_a_long_history_is_sized_to_the_window_the_manager_asks_for(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    # Each question is about a third of the window: by the third the history cannot all fit,
    # and the manager learns the tokenizer from each answer's counts as it goes.
    for round_ in range(5):
        await manager.query(
            prompt=f"{PROSE}{PROSE}Question {round_}?",
            session_id="long",
            num_ctx=512,
            num_predict=8,
            temperature=0.0,
        )
    assert real_ollama.truncations == []  # every prompt fitted: nothing cut by the server
    for gen in real_ollama.generations:
        assert gen.window == 512 and gen.options["num_ctx"] == 512
        assert gen.prompt_tokens + 8 <= 512
    last = real_ollama.generations[-1]
    assert last.messages[-1]["content"].endswith("Question 4?")
    assert 1 < len([m for m in last.messages if m["role"] == "user"]) < 5  # some history kept


async def test_a_json_schema_answer_validates(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 24}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
    }
    result = await manager.query(
        prompt="Describe a city as JSON.", format=schema, num_predict=80, seed=2
    )
    (gen,) = real_ollama.generations
    assert result.content == gen.content and result.done_reason == "stop"
    jsonschema.validate(json.loads(result.content), schema)


async def test_embeddings_through_the_manager(
    manager: OllamaRequestManager, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    vectors = await manager.embed(["the harbour", "the market hall", "ferries"])
    assert len(vectors) == 3
    assert all(len(v) == engine.embedding_length(SMOLLM2) for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)


async def test_a_tool_offered_reaches_the_template_and_runs_only_if_called(
    manager: OllamaRequestManager, real_ollama: RealModelServer, engine: Engine
) -> None:
    """SmolLM2-135M does not manage tool calls: offered one, at temperature 0 it answers in
    text (tried: three phrasings). So this checks the offer on real tokens: the tool reaches
    the model in its template, its text passes the tool parser untouched, and nothing runs
    that the model did not call. Calls themselves: tests/e2e/test_tools.py (emulator)."""
    needs(engine, SMOLLM2)
    ran: list[dict[str, Any]] = []

    async def weather(arguments: dict[str, Any], context: ToolContext) -> str:
        ran.append(arguments)
        return "Sunny, 21 degrees."

    tool = Tool(
        name="get_weather",
        description="The current weather in a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
        handler=weather,
    )
    result = await manager.query(
        prompt="What is the weather in Paris?",
        toolset=ToolSet({"get_weather": tool}),
        temperature=0.0,
        num_predict=48,
    )
    (gen,) = real_ollama.generations
    assert '<tools>{"type": "function", "function": {"name": "get_weather"' in gen.prompt
    assert gen.tool_calls == [] and ran == [] and result.tools_used == []
    assert result.content == gen.content == gen.text
