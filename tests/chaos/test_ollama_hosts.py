"""Two Ollama hosts (OLLAMA_HOSTS); the one answering goes away mid-answer (its process
stops: the stream is cut, the port closed) and comes back later on the same port.

The member sees the half answer replaced by the other host's whole one (the status line
between them shows only if the other host is slow to start: test_hosts.py makes it so);
/healthz reports the host down while it is gone and up once it is back; questions asked
meanwhile are answered by the other host, and one only the returned host can answer (its
model is nowhere else) is answered by it. Each turn is stored once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.bot.core.hosts.conftest import only, questions
from tests.chaos.ollama_world import WAIT, assert_stored, settled
from tests.e2e.conftest import World, world
from tests.e2e.test_ask import FOOTER_LINE, ask, finished, pages_without_footer
from tests.e2e.test_hosts import free_port
from tests.emulators.ollama_server import OllamaEmulator

HALF_SHOWN = "Alpha"  # the first word of the answer the first host streams slowly
POLL = 0.05


@contextlib.asynccontextmanager
async def two_hosts(tmp_path: Path) -> AsyncIterator[tuple[World, OllamaEmulator]]:
    """The world's emulator (every model, on a port it can come back to) first, a second
    one with qwen3 only; /healthz served on a free port."""
    port = free_port()
    async with OllamaEmulator(only("qwen3")) as second:
        hosts = f"http://127.0.0.1:{port}*2,{second.url}*2"
        async with world(
            tmp_path, ollama_options={"port": port}, OLLAMA_HOSTS=hosts, HTTP_PORT="0"
        ) as w:
            yield w, second


async def host_status(w: World, emu: OllamaEmulator) -> str:
    """What /healthz says of this host: "up" or "down"."""
    assert w.bot.http_server is not None
    url = f"http://127.0.0.1:{w.bot.http_server.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body: dict[str, Any] = await resp.json()
    [report] = [h for h in body["components"]["ollama"]["hosts"] if h["host"] == emu.url]
    return str(report["status"])


async def wait_status(w: World, emu: OllamaEmulator, wanted: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (status := await host_status(w, emu)) != wanted:
        assert loop.time() < deadline, f"{emu.url} still {status}, not {wanted}"
        await asyncio.sleep(POLL)


async def test_a_host_that_goes_away_mid_answer_and_comes_back(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (w, second):
        first = w.ollama
        first.set_reply(f"{HALF_SHOWN} beta gamma delta epsilon zeta eta theta iota kappa.")
        first.tokens_per_second = 4  # slow: the member sees the half answer
        second.set_reply("From the other server.")
        rec = await ask(w, "Who answers?", model="qwen3")
        await rec.wait_done(
            lambda r: r.original is not None and r.original.content.startswith(HALF_SHOWN),
            timeout=WAIT,
        )
        await first.stop()  # Ollama exits mid-answer

        pages = await settled(rec)
        assert [FOOTER_LINE.sub("", p) for p in pages] == ["From the other server."]
        assert rec.original is not None
        statuses = [text for _, text in rec.original.edits]
        assert any(s.startswith(HALF_SHOWN) for s in statuses), statuses  # it was shown

        await wait_status(w, first, "down")
        second.set_reply("Still from the other server.")
        messages = await finished(await ask(w, "Meanwhile?", model="qwen3"), timeout=WAIT)
        assert pages_without_footer(messages) == ["Still from the other server."]

        await first.start()  # back, on the same port
        await wait_status(w, first, "up")
        first.tokens_per_second = None
        first.set_reply("Back again.")
        messages = await finished(await ask(w, "Only you have llama3.2."), timeout=WAIT)
        assert pages_without_footer(messages) == ["Back again."]
        assert questions(first)[-1] == "Only you have llama3.2."
        assert questions(second) == ["Who answers?", "Meanwhile?"]

        turns = await assert_stored(
            w, answered=["Who answers?", "Meanwhile?", "Only you have llama3.2."]
        )
        assert turns[0] == ("Who answers?", "From the other server.")
