"""Shared fixtures: the Ollama emulator on 127.0.0.1 and a request manager talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot import OllamaRequestManager
from tests.emulators.ollama_server import OllamaEmulator


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator() as emu:
        yield emu


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ollacord.db'}"


ManagerFactory = Callable[..., OllamaRequestManager]


@pytest.fixture
async def make_manager(
    ollama_emu: OllamaEmulator, database_url: str
) -> AsyncIterator[ManagerFactory]:
    """Build started managers against the emulator; tiny backoff keeps retry tests fast."""
    made: list[OllamaRequestManager] = []

    def factory(**overrides: Any) -> OllamaRequestManager:
        options: dict[str, Any] = {
            "host": ollama_emu.url,
            "default_model": "llama3.2",
            "database_url": database_url,
            "retry_backoff": 0.01,
            "request_timeout": 10.0,
            "first_token_timeout": 5.0,
            "stream_idle_timeout": 5.0,
        }
        options.update(overrides)
        manager = OllamaRequestManager(**options)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.close()


@pytest.fixture
async def manager(make_manager: ManagerFactory) -> OllamaRequestManager:
    m = make_manager()
    await m.start()
    return m
