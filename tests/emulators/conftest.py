"""Fixtures the Ollama emulator's tests share: a fresh emulator, the official client on it,
and raw httpx for the tests about the wire itself.

A test file that needs another catalogue overrides `emu`; `client` and `raw` follow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.emulators.ollama_server import OllamaEmulator

CLIENT_TIMEOUT = 10  # seconds; a hung emulator fails the test instead of stalling the run


@pytest.fixture
async def emu() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator() as server:
        yield server


@pytest.fixture
async def client(emu: OllamaEmulator) -> AsyncIterator[ollama.AsyncClient]:
    api = ollama.AsyncClient(host=emu.url, timeout=CLIENT_TIMEOUT)
    yield api
    await api.close()


@pytest.fixture
async def raw(emu: OllamaEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.url, timeout=CLIENT_TIMEOUT) as http:
        yield http
