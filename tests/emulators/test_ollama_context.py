"""The emulator's context window: num_ctx, the server's default, truncation and refusal."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator


def chat(content: str, **options: int) -> dict[str, object]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": content}],
        "stream": False,
        "options": options,
    }


async def test_prompt_eval_count_follows_the_models_tokenizer() -> None:
    models = [EmulatedModel("m", chars_per_token=4.0), EmulatedModel("d", chars_per_token=2.0)]
    async with OllamaEmulator(models) as emu:
        client = ollama.AsyncClient(host=emu.url)
        message = [{"role": "user", "content": "x" * 400}]
        sparse = await client.chat(model="m", messages=message)
        dense = await client.chat(model="d", messages=message)
        # 400 characters, plus the template's tokens (4 per message and 1 to begin with).
        assert (sparse.prompt_eval_count, dense.prompt_eval_count) == (105, 205)


async def test_an_overlong_chat_loses_its_oldest_messages_silently() -> None:
    async with OllamaEmulator([EmulatedModel("m", context_length=131_072)]) as emu:
        client = ollama.AsyncClient(host=emu.url)
        old = [{"role": "user", "content": "x" * 20_000}, {"role": "assistant", "content": "ok"}]
        messages = [{"role": "system", "content": "Be brief."}, *old]
        messages.append({"role": "user", "content": "And now?"})
        # No num_ctx: the server's default (4096) applies, not the model's 131,072.
        answer = await client.chat(model="m", messages=messages)
        assert answer.message.content == "Echo: And now?"
        # 1 to begin, then each message's text and 4 around it: 7 + 5004 + 5 + 6.
        assert emu.truncations == [(5023, 4096)]
        assert answer.prompt_eval_count is not None and answer.prompt_eval_count < 4096
        # Asked for a window that holds it, nothing is cut.
        await client.chat(model="m", messages=messages, options={"num_ctx": 8192})
        assert len(emu.truncations) == 1
        (running,) = (await client.ps()).models
        assert running.model_dump().get("context_length") == 8192


async def test_num_ctx_is_capped_at_the_trained_maximum() -> None:
    async with OllamaEmulator([EmulatedModel("m", context_length=1024)]) as emu:
        client = ollama.AsyncClient(host=emu.url)
        await client.chat(model="m", messages=[{"role": "user", "content": "x" * 6000}])
        assert emu.truncations == [(1505, 1024)]


async def test_a_llama_cpp_style_server_refuses_instead() -> None:
    models = [EmulatedModel("m", context_length=131_072)]
    async with (
        OllamaEmulator(models, context_overflow="refuse", default_num_ctx=2048) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        refused = await http.post("/api/chat", json=chat("x" * 9000))
        assert refused.status_code == 500
        assert refused.json() == {"error": "Requested tokens (2255) exceed context window of 2048"}
        fits = await http.post("/api/chat", json=chat("x" * 9000, num_ctx=4096))
        assert fits.status_code == 200
        assert emu.truncations == []


def test_an_unknown_overflow_behaviour_is_refused() -> None:
    with pytest.raises(ValueError, match="context_overflow"):
        OllamaEmulator(context_overflow="explode")
