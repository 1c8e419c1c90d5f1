"""/healthz, /metrics and /models with several Ollama hosts: each host reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import OllamaRequestManager
from bot.ops.http_api import DiscordStatus, HttpServer, start_http_server
from tests.bot.core.hosts.conftest import host_of, only, spread_over
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import wait_until


def connected() -> DiscordStatus:
    return DiscordStatus(True, 0.01)


@pytest.fixture
async def emulators() -> AsyncIterator[tuple[OllamaEmulator, OllamaEmulator]]:
    async with OllamaEmulator(only("llama3.2", "qwen3")) as a, OllamaEmulator(only("qwen3")) as b:
        yield a, b


@pytest.fixture
async def manager(
    emulators: tuple[OllamaEmulator, OllamaEmulator], database_url: str
) -> AsyncIterator[OllamaRequestManager]:
    a, b = emulators
    async with spread_over(database_url, [(a, 1), (b, 2)], first_token_timeout=60.0) as started:
        yield started


@pytest.fixture
async def server(manager: OllamaRequestManager) -> AsyncIterator[HttpServer]:
    running = await start_http_server(manager, connected)
    yield running
    await running.stop()


async def get(server: HttpServer, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def test_healthz_reports_each_host_and_stays_up_while_one_answers(
    server: HttpServer, emulators: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    a, b = emulators
    status, body = await get(server, "/healthz")
    assert (status, body["status"]) == (200, "healthy")
    hosts = body["components"]["ollama"]["hosts"]
    assert [(h["host"], h["status"], h["capacity"]) for h in hosts] == [
        (a.url, "up", 1),
        (b.url, "up", 2),
    ]
    assert all(h["version"] == "0.12.6" and isinstance(h["latency_ms"], float) for h in hosts)
    figures = [{k: h[k] for k in ("in_flight", "queued", "answers", "errors")} for h in hosts]
    assert figures == [{"in_flight": 0, "queued": 0, "answers": 0, "errors": 0}] * 2

    b.refuse_connections()
    status, body = await get(server, "/healthz")
    ollama = body["components"]["ollama"]
    assert (status, ollama["status"]) == (200, "up")  # a still answers every model b had
    assert b.url in ollama["error"]
    down = ollama["hosts"][1]
    assert down["host"] == b.url and "Cannot reach the model server" in down["error"]
    assert down["latency_ms"] is None

    a.refuse_connections()
    status, body = await get(server, "/healthz")
    assert (status, body["components"]["ollama"]["status"]) == (503, "down")


def host_samples(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ollacord_host_"):
                found[sample.name, sample.labels["host"]] = sample.value
    return found


async def test_metrics_give_each_host_its_figures(
    server: HttpServer,
    manager: OllamaRequestManager,
    emulators: tuple[OllamaEmulator, OllamaEmulator],
) -> None:
    a, b = emulators
    await manager.ask(prompt="on a")  # llama3.2: only a has it
    b.fail_next(status=503, error="busy")
    await manager.ask(prompt="on b first", model="qwen3")  # b has more free slots
    a.stall_before_first_token(60)
    held = asyncio.create_task(manager.ask(prompt="held"))
    await wait_until(lambda: host_of(manager, a).active == 1)
    waiting = asyncio.create_task(manager.ask(prompt="waits"))
    await wait_until(lambda: manager.queue.depth == 1)
    try:
        status, text = await get(server, "/metrics")
    finally:
        for task in (held, waiting):
            task.cancel()
        await asyncio.gather(held, waiting, return_exceptions=True)
    assert status == 200
    found = host_samples(text)
    assert found == {
        ("ollacord_host_up", a.url): 1.0,
        ("ollacord_host_up", b.url): 1.0,
        ("ollacord_host_in_flight", a.url): 1.0,
        ("ollacord_host_in_flight", b.url): 0.0,
        ("ollacord_host_queued", a.url): 1.0,
        ("ollacord_host_queued", b.url): 0.0,
        # "on b first" failed on b (busy) and moved to a
        ("ollacord_host_answers_total", a.url): 2.0,
        ("ollacord_host_answers_total", b.url): 0.0,
        ("ollacord_host_errors_total", a.url): 0.0,
        ("ollacord_host_errors_total", b.url): 1.0,
    }


async def test_models_name_the_hosts_of_each_model(
    server: HttpServer, emulators: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    a, b = emulators
    status, body = await get(server, "/models")
    assert status == 200
    assert {m["name"]: m["hosts"] for m in body["models"]} == {
        "llama3.2:latest": [a.url],
        "qwen3:latest": [a.url, b.url],
    }
