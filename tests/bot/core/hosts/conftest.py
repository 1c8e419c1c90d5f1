"""Several Ollama emulators at once, and request managers spread over them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from bot import OllamaRequestManager
from bot.core.hosts.host import Host
from bot.core.hosts.spec import HostSpec
from tests.emulators.ollama_models import EmulatedModel, default_models
from tests.emulators.ollama_server import OllamaEmulator


def only(*names: str) -> list[EmulatedModel]:
    """The emulator's default models of these names (``llama3.2``, ``qwen3``, ...)."""
    wanted = {n if ":" in n else f"{n}:latest" for n in names}
    return [m for m in default_models() if m.name in wanted]


def chats(emu: OllamaEmulator) -> list[dict[str, Any]]:
    """The bodies of the chat requests an emulator got, oldest first."""
    return [r.json or {} for r in emu.requests if r.path == "/api/chat"]


def questions(emu: OllamaEmulator) -> list[str]:
    """The last user message of each question an emulator got (loading requests left out)."""
    return [c["messages"][-1]["content"] for c in chats(emu) if c.get("messages")]


def host_of(manager: OllamaRequestManager, emu: OllamaEmulator) -> Host:
    return next(h for h in manager.hosts.hosts if h.label == emu.url)


@contextlib.asynccontextmanager
async def spread_over(
    database_url: str | None,
    hosts: Sequence[tuple[OllamaEmulator, int | None]],
    **options: Any,
) -> AsyncIterator[OllamaRequestManager]:
    """A started manager on these emulators (each with its capacity; None: the default)."""
    settings: dict[str, Any] = {
        "hosts": [HostSpec(emu.url, capacity) for emu, capacity in hosts],
        "default_model": "llama3.2",
        "database_url": database_url,
        "retry_backoff": 0.01,
        "request_timeout": 10.0,
        "first_token_timeout": 5.0,
        "stream_idle_timeout": 5.0,
        **options,
    }
    manager = OllamaRequestManager(**settings)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close(grace=0)
