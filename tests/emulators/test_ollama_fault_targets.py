"""Faults aimed at one question (``prompt=``): under load requests arrive in no fixed order,
so a fault must hit the question it was meant for and leave the others alone."""

from __future__ import annotations

import ollama
import pytest

from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import collect


def said(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_a_failure_aimed_at_a_prompt_spares_the_others(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.fail_next(2, status=503, error="busy", prompt="[q7]")

    assert (await client.chat("llama3.2", said("[q1] hi"))).message.content == "Echo: [q1] hi"
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat("llama3.2", said("[q7] hi"))
        assert (caught.value.status_code, caught.value.error) == (503, "busy")
    assert (await client.chat("llama3.2", said("[q7] hi"))).message.content == "Echo: [q7] hi"
    assert emu.pending_faults == []


async def test_the_prompt_is_the_last_user_message_of_a_chat_or_a_generate_prompt(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.fail_next(1, prompt="[q2]")
    history = [*said("[q2] earlier"), {"role": "assistant", "content": "ok"}, *said("[q3] now")]

    assert (await client.chat("llama3.2", history)).message.content == "Echo: [q3] now"
    assert len(emu.pending_faults) == 1  # only an earlier message named it
    with pytest.raises(ollama.ResponseError):
        await client.generate("llama3.2", "[q2] as a prompt")


async def test_stream_faults_aimed_at_a_prompt(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("one two three four five six")
    emu.drop_mid_stream(after_tokens=2, prompt="[drop]")
    emu.error_mid_stream(after_tokens=1, prompt="[error]")
    emu.stall_mid_stream(after_tokens=1, seconds=0.01, prompt="[stall]")
    emu.stall_before_first_token(0.01, prompt="[stall]")

    whole, failure = await collect(await client.chat("llama3.2", said("[fine]"), stream=True))
    assert failure is None and "".join(p.message.content for p in whole) == (
        "one two three four five six"
    )
    assert len(emu.pending_faults) == 4

    _, dropped = await collect(await client.chat("llama3.2", said("[drop]"), stream=True))
    _, errored = await collect(await client.chat("llama3.2", said("[error]"), stream=True))
    assert dropped is not None
    assert isinstance(errored, ollama.ResponseError)
    assert "unexpectedly stopped" in str(errored)

    stalled, failure = await collect(await client.chat("llama3.2", said("[stall]"), stream=True))
    assert failure is None and len(stalled) > 1
    assert emu.pending_faults == []
