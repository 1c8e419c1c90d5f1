"""The real-model server speaks Ollama's wire format: what the official client and a raw
NDJSON reader see, with counts and durations that agree with what the model did."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import httpx
import jsonschema
import ollama
import pytest

from tests.real_model.conftest import needs
from tests.real_model.models import GEMMA3, SMOLLM2

if TYPE_CHECKING:
    from tests.real_model.engine import Engine
    from tests.real_model.server import RealModelServer

pytestmark = pytest.mark.real_model

QUESTION = [{"role": "user", "content": "Name three colours."}]
SHORT = {"num_predict": 12, "temperature": 0, "seed": 7}


async def stream_lines(server: RealModelServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every NDJSON line of a streamed /api/chat, parsed one by one."""
    lines = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=120) as http,
        http.stream("POST", "/api/chat", json=body) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ndjson"
        async for line in resp.aiter_lines():
            if line:
                lines.append(json.loads(line))
    return lines


async def test_the_catalogue_describes_the_real_files(real_ollama: RealModelServer) -> None:
    client = ollama.AsyncClient(host=real_ollama.url)
    engine = real_ollama.engine
    assert (await client._request_raw("GET", "/api/version")).json() == {"version": "0.12.6"}
    listed = {m.model: m for m in (await client.list()).models}
    assert set(listed) == set(engine.specs)
    for name, spec in engine.specs.items():
        assert listed[name].size == spec.path.stat().st_size
        assert listed[name].details is not None and listed[name].details.format == "gguf"
        shown = await client.show(name)
        arch = shown.modelinfo["general.architecture"]
        # The trained window, read from the GGUF: what the bot caps num_ctx at.
        assert shown.modelinfo[f"{arch}.context_length"] == engine.trained_context(name)
        assert tuple(shown.capabilities or ()) == spec.capabilities


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
async def test_a_streamed_chat_counts_and_times_what_the_model_did(
    real_ollama: RealModelServer, engine: Engine, model: str
) -> None:
    needs(engine, model)
    body = {"model": model, "messages": QUESTION, "options": {**SHORT, "num_ctx": 1024}}
    lines = await stream_lines(real_ollama, body)
    *parts, last = lines
    assert all(p["done"] is False and p["message"]["role"] == "assistant" for p in parts)
    assert last["done"] is True and last["done_reason"] in ("stop", "length")
    (gen,) = real_ollama.generations
    streamed = "".join(p["message"]["content"] for p in lines)
    assert streamed == gen.content == gen.text
    # Each line is at least one token; num_predict bounds them.
    assert len(parts) <= last["eval_count"] == gen.eval_count <= SHORT["num_predict"]
    assert (last["done_reason"] == "length") == (gen.eval_count == SHORT["num_predict"])
    assert last["prompt_eval_count"] == gen.prompt_tokens
    loaded = engine.loaded()[model]
    assert gen.prompt_tokens == len(engine.tokenize(loaded.llama, gen.prompt))
    durations = ("load_duration", "prompt_eval_duration", "eval_duration")
    assert all(isinstance(last[k], int) and last[k] > 0 for k in (*durations, "total_duration"))
    assert last["total_duration"] >= sum(last[k] for k in durations)
    # The window asked for is the one the model runs with, as /api/ps reports it.
    running = {m.model: m for m in (await ollama.AsyncClient(host=real_ollama.url).ps()).models}
    assert running[model].context_length == 1024 and running[model].size_vram == 0


async def test_a_stop_string_ends_the_answer_and_is_never_sent(
    real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    client = ollama.AsyncClient(host=real_ollama.url)
    options = {"temperature": 0, "seed": 1, "num_predict": 48, "stop": [","]}
    ask = [{"role": "user", "content": "List five fruits, separated by commas."}]
    answer = await client.chat(model=SMOLLM2, messages=ask, options=options)
    (gen,) = real_ollama.generations
    assert "," not in answer.message.content and answer.message.content == gen.content
    assert answer.done_reason == "stop" and answer.eval_count == gen.eval_count


async def test_a_json_schema_is_followed(real_ollama: RealModelServer, engine: Engine) -> None:
    needs(engine, SMOLLM2)
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "bright": {"type": "boolean"},
        },
        "required": ["colour", "bright"],
    }
    client = ollama.AsyncClient(host=real_ollama.url)
    answer = await client.chat(
        model=SMOLLM2, messages=QUESTION, format=schema, options={"num_predict": 64, "seed": 3}
    )
    assert answer.done_reason == "stop"
    jsonschema.validate(json.loads(answer.message.content), schema)


async def test_embeddings_are_unit_vectors_of_the_models_width(
    real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    client = ollama.AsyncClient(host=real_ollama.url)
    answer = await client.embed(model=SMOLLM2, input=["a cat", "a dog on a mat"])
    assert len(answer.embeddings) == 2
    for vector in answer.embeddings:
        assert len(vector) == engine.embedding_length(SMOLLM2)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-4)
    assert answer.embeddings[0] != answer.embeddings[1]
    assert answer.prompt_eval_count and answer.prompt_eval_count >= 4


async def test_what_a_model_cannot_do_is_refused_as_ollama_refuses_it(
    real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, GEMMA3)
    client = ollama.AsyncClient(host=real_ollama.url)
    tool = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
    with pytest.raises(ollama.ResponseError) as refused:
        await client.chat(model=GEMMA3, messages=QUESTION, tools=[tool])
    assert refused.value.status_code == 400 and "does not support tools" in refused.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        await client.chat(model="llama3.2", messages=QUESTION)
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as unembedded:
        await client.embed(model=GEMMA3, input="text")
    assert unembedded.value.status_code == 500  # gemma3 runs on Ollama's own engine
    assert not real_ollama.generations


async def test_a_prompt_over_the_window_is_cut_or_refused(
    real_ollama: RealModelServer, engine: Engine
) -> None:
    needs(engine, SMOLLM2)
    client = ollama.AsyncClient(host=real_ollama.url)
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Message {i}: " + "word " * 60}
        for i in range(12)
    ]
    options = {"num_ctx": 256, "num_predict": 4, "temperature": 0}
    answer = await client.chat(model=SMOLLM2, messages=history, options=options)
    ((tokens, window),) = real_ollama.truncations
    assert tokens > window == 256 and answer.prompt_eval_count is not None
    assert answer.prompt_eval_count < 256
    assert "Message 11" in real_ollama.generations[0].prompt  # the last message stays
    assert "Message 0" not in real_ollama.generations[0].prompt  # the oldest went
    real_ollama.context_overflow = "refuse"
    with pytest.raises(ollama.ResponseError) as refused:
        await client.chat(model=SMOLLM2, messages=history, options=options)
    assert "exceed context window of 256" in refused.value.error
