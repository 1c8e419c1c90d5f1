"""Faults and concurrency in the Ollama emulator: refused connections, errors, stalls,
drops, the queue and its limits, driven through the official client."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

import httpx
import ollama
import pytest

from tests.emulators.ollama_faults import PULL_PATHS, RUNNER_STOPPED
from tests.emulators.ollama_server import BUSY, EmulatedModel, OllamaEmulator
from tests.emulators.ollama_testing import collect, collect_or_raise, wait_until

USER_HI = [{"role": "user", "content": "hi"}]


# -- faults ------------------------------------------------------------------------------
async def test_refuse_and_accept_connections(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    url = emu.url
    await client.list()  # leaves a pooled keep-alive connection behind
    emu.refuse_connections()
    with pytest.raises(ConnectionError):
        await client.chat("llama3.2", USER_HI)
    with pytest.raises(httpx.ConnectError):  # the client does not translate this in streams
        await collect_or_raise(await client.chat("llama3.2", USER_HI, stream=True))
    await emu.accept_connections()
    assert emu.url == url
    assert (await client.chat("llama3.2", USER_HI)).message.content == "Echo: hi"


async def test_fail_next_answers_errors_then_recovers(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.fail_next(2)
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat("llama3.2", USER_HI)
        assert (caught.value.status_code, caught.value.error) == (500, "internal error")
    assert (await client.chat("llama3.2", USER_HI)).message.content == "Echo: hi"

    emu.fail_next(status=503, error="busy", paths=("/api/tags",))
    assert (await client.chat("llama3.2", USER_HI)).done  # other paths are untouched
    with pytest.raises(ollama.ResponseError) as tags:
        await client.list()
    assert (tags.value.status_code, tags.value.error) == (503, "busy")
    assert len((await client.list()).models) == 3


async def test_stall_before_first_token_sends_headers_first(
    emu: OllamaEmulator, raw: httpx.AsyncClient
) -> None:
    stall = 0.5
    emu.stall_before_first_token(stall)
    started = time.monotonic()
    body = {"model": "llama3.2", "messages": USER_HI}
    async with raw.stream("POST", "/api/chat", json=body) as response:
        headers_after = time.monotonic() - started
        lines = response.aiter_lines()
        await anext(lines)
        first_after = time.monotonic() - started
    assert response.status_code == 200
    assert headers_after < stall  # the 200 went out before the stall
    assert first_after >= stall


async def test_stall_before_first_token_delays_a_whole_answer(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.stall_before_first_token(0.25, count=1)
    started = time.monotonic()
    await client.generate("llama3.2", "hi")
    assert time.monotonic() - started >= 0.25
    assert emu.pending_faults == []  # consumed by that one request


async def test_stall_mid_stream_pauses_after_n_tokens(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("a b c d e f")
    emu.stall_mid_stream(after_tokens=3, seconds=0.5)
    stamps: list[float] = []
    chunks = []
    async for chunk in await client.chat("llama3.2", USER_HI, stream=True):
        stamps.append(time.monotonic())
        chunks.append(chunk)
    assert "".join(c.message.content or "" for c in chunks) == "a b c d e f"
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    # Between the 3rd and 4th chunk. The 3rd may reach us a little late on a busy machine,
    # which shortens the gap we see: a margin keeps this about the stall, not the scheduler.
    assert gaps[2] >= 0.4
    assert gaps[2] == max(gaps)


async def test_drop_mid_stream_breaks_the_connection(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("a b c d e f")
    emu.drop_mid_stream(after_tokens=2)
    chunks, error = await collect(await client.chat("llama3.2", USER_HI, stream=True))
    assert [c.message.content for c in chunks] == ["a", " b"]
    assert isinstance(error, httpx.RemoteProtocolError)

    emu.drop_mid_stream(after_tokens=2)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.chat("llama3.2", USER_HI)
    assert (await client.chat("llama3.2", USER_HI)).message.content == "a b c d e f"
    assert emu.active_streams == 0


async def test_error_mid_stream_is_an_error_line(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("a b c d e f")
    emu.error_mid_stream(after_tokens=3)
    chunks, error = await collect(await client.generate("llama3.2", "hi", stream=True))
    assert [c.response for c in chunks] == ["a", " b", " c"]
    assert isinstance(error, ollama.ResponseError)
    assert (error.status_code, error.error) == (-1, "model runner has unexpectedly stopped")

    emu.error_mid_stream(after_tokens=1, error="boom")
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat("llama3.2", USER_HI)
    assert (caught.value.status_code, caught.value.error) == (500, "boom")


async def test_fault_past_the_end_fires_before_the_last_line(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.error_mid_stream(after_tokens=100)
    chunks, error = await collect(await client.chat("llama3.2", USER_HI, stream=True))
    assert "".join(c.message.content or "" for c in chunks) == "Echo: hi"
    assert not any(c.done for c in chunks)
    assert isinstance(error, ollama.ResponseError)


async def test_clear_faults_forgets_pending_faults(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.fail_next(3)
    emu.drop_mid_stream(0)
    assert len(emu.pending_faults) == 2
    emu.clear_faults()
    assert emu.pending_faults == []
    assert (await client.chat("llama3.2", USER_HI)).message.content == "Echo: hi"


# -- concurrency -------------------------------------------------------------------------
async def test_full_queue_answers_503() -> None:
    long_reply = " ".join(["word"] * 40)
    async with (
        OllamaEmulator(num_parallel=1, max_queue=1, tokens_per_second=40) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        emu.set_reply(long_reply)
        running = asyncio.create_task(client.chat("llama3.2", USER_HI))
        await wait_until(lambda: emu.active_streams == 1)
        waiting = asyncio.create_task(client.chat("llama3.2", USER_HI))
        await wait_until(lambda: emu.queued == 1)
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat("llama3.2", USER_HI)
        emu.tokens_per_second = None  # let the two others finish now
        done = await asyncio.gather(running, waiting)
    assert (caught.value.status_code, caught.value.error) == (503, BUSY)
    assert [d.message.content for d in done] == [long_reply, long_reply]
    assert emu.max_active_seen == 1


async def test_at_most_num_parallel_answers_at_once() -> None:
    async with (
        OllamaEmulator(num_parallel=2, tokens_per_second=500) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        emu.set_reply("a b c d e f g h i j")
        answers = await asyncio.gather(*(client.chat("llama3.2", USER_HI) for _ in range(5)))
    assert all(a.message.content == "a b c d e f g h i j" for a in answers)
    assert emu.max_active_seen == 2
    assert emu.active_streams == 0 and emu.queued == 0


async def test_client_hanging_up_mid_stream_is_quiet(
    emu: OllamaEmulator, client: ollama.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    emu.tokens_per_second = 100
    emu.set_reply(" ".join(["word"] * 100))
    stream = await client.chat("llama3.2", USER_HI, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    assert emu.active_streams == 1
    await wait_until(lambda: emu.active_streams == 0)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []
    emu.tokens_per_second = None
    assert (await client.chat("llama3.2", USER_HI)).done


async def test_stop_does_not_wait_for_a_stalled_answer(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.stall_before_first_token(30)
    pending = asyncio.create_task(collect(await client.chat("llama3.2", USER_HI, stream=True)))
    await wait_until(lambda: emu.active_streams == 1)
    started = time.monotonic()
    await emu.stop()
    assert time.monotonic() - started < 5
    chunks, error = await pending
    assert chunks == [] and isinstance(error, httpx.TransportError)
    assert emu.active_streams == 0


async def test_a_client_hanging_up_during_a_stall_frees_its_slot() -> None:
    # Ollama ends a request whose client went away (its context is done), even one still
    # waiting for its first token: the slot is free for the next question at once.
    async with (
        OllamaEmulator(num_parallel=1) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        emu.stall_before_first_token(3600)
        stream = await client.chat("llama3.2", USER_HI, stream=True)
        waiting = asyncio.create_task(anext(stream))
        await wait_until(lambda: emu.active_streams == 1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await stream.aclose()
        await wait_until(lambda: emu.active_streams == 0)
        assert (await client.chat("llama3.2", USER_HI)).message.content == "Echo: hi"


async def test_fail_in_runner_is_a_500_after_the_queue_and_the_load(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.fail_in_runner()
    with pytest.raises(ollama.ResponseError) as caught:
        await collect_or_raise(await client.chat("llama3.2", USER_HI, stream=True))
    assert (caught.value.status_code, caught.value.error) == (500, RUNNER_STOPPED)
    assert "llama3.2:latest" in emu.loaded  # it failed once the model was loaded
    assert (await client.chat("llama3.2", USER_HI)).message.content == "Echo: hi"


PULLABLE = {"mistral:7b": EmulatedModel("mistral:7b")}
PULL_FAILED = "max retries exceeded: unexpected EOF"  # Ollama's words for a failed download


@pytest.mark.parametrize(
    ("inject", "error"),
    [
        (
            lambda e: e.error_mid_stream(3, "max retries exceeded", paths=PULL_PATHS),
            "max retries exceeded",
        ),
        (lambda e: e.drop_mid_stream(3, paths=PULL_PATHS), None),
    ],
    ids=["error", "drop"],
)
async def test_a_pull_that_fails_midway_installs_nothing(
    inject: Callable[[OllamaEmulator], None], error: str | None
) -> None:
    async with (
        OllamaEmulator(pullable=PULLABLE) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        inject(emu)
        assert (await client.chat("llama3.2", USER_HI)).done  # a chat is not a pull
        lines, failure = await collect(await client.pull("mistral:7b", stream=True))
        # The manifest, then three progress lines.
        assert lines[0].status == "pulling manifest"
        assert len(lines) == 1 + 3 and lines[1].status.startswith("pulling ")
        if error is None:
            assert isinstance(failure, httpx.RemoteProtocolError)
        else:
            assert isinstance(failure, ollama.ResponseError) and failure.error == error
        assert "mistral:7b" not in emu.models
        assert (await client.pull("mistral:7b")).status == "success"


async def test_a_stalled_pull_waits_until_its_stall_is_ended(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.pullable["mistral:7b"] = PULLABLE["mistral:7b"]
    emu.stall_mid_stream(2, seconds=3600, paths=PULL_PATHS)
    lines: list[str] = []

    async def pull() -> None:
        async for progress in await client.pull("mistral:7b", stream=True):
            lines.append(progress.status or "")

    pulling = asyncio.create_task(pull())
    await wait_until(lambda: len(lines) == 3)
    assert (await client.chat("llama3.2", USER_HI)).done  # the server answers meanwhile
    assert len(lines) == 3 and not pulling.done()
    emu.end_stalls()
    await pulling
    assert lines[-1] == "success" and "mistral:7b" in emu.models


async def test_a_stalled_answer_goes_on_when_its_stall_is_ended(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    emu.set_reply("a b c d")
    emu.stall_mid_stream(after_tokens=1, seconds=3600)
    chunks: list[str] = []

    async def chat() -> None:
        async for chunk in await client.chat("llama3.2", USER_HI, stream=True):
            chunks.append(chunk.message.content or "")

    answering = asyncio.create_task(chat())
    await wait_until(lambda: len(chunks) == 1)
    assert (await client.chat("llama3.2", USER_HI)).done  # the server answers meanwhile
    assert len(chunks) == 1 and not answering.done()
    emu.end_stalls()
    await answering
    assert "".join(chunks) == "a b c d"


async def test_a_stopped_emulator_starts_again_on_the_same_port() -> None:
    # Ollama restarting: what it had stays, it listens where it did.
    async with OllamaEmulator() as emu, ollama.AsyncClient(host=emu.url, timeout=10) as client:
        url = emu.url
        emu.set_reply("Before.")
        assert (await client.chat("llama3.2", USER_HI)).message.content == "Before."
        await emu.stop()
        with pytest.raises(ConnectionError):
            await client.chat("llama3.2", USER_HI)
        await emu.start()
        assert emu.url == url
        assert (await client.chat("llama3.2", USER_HI)).message.content == "Before."
