"""The real `python -m bot` as a process against the Discord and Ollama emulators: start it,
read its log, ask it questions, and read what it stored in its SQLite database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path

from tests.bot.test_main import emulator_env, run_bot_process
from tests.emulators.discord_server import (
    Channel,
    DiscordEmulator,
    Guild,
    InteractionRecord,
    Message,
    User,
)
from tests.emulators.ollama_server import OllamaEmulator

CURSOR = "▌"
RESTARTING = "Interrupted: the bot is restarting"
CRASHED = "Interrupted by a restart; ask again."
LOG_WAIT = 30.0  # seconds a process may take to log what a test waits for
ROWS_WAIT = 15.0  # seconds the bot may take to write what a test waits for


@dataclass
class Bot:
    """A running `python -m bot` and what it logged so far."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)

    async def wait_log(self, needle: str, timeout: float = LOG_WAIT) -> str:  # noqa: ASYNC109
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"exited before logging {needle!r}:\n{self.text}")
                self.log.append(raw.decode())
                if needle in self.log[-1]:
                    return self.log[-1]

    async def wait_exit(self, timeout: float = LOG_WAIT) -> int:  # noqa: ASYNC109
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        self.log.append(err.decode())
        assert self.proc.returncode is not None
        return self.proc.returncode

    @property
    def text(self) -> str:
        return "".join(self.log)


@dataclass
class Setup:
    discord: DiscordEmulator
    ollama: OllamaEmulator
    guild: Guild
    channels: list[Channel]  # one conversation each: answers there don't wait for each other
    alice: User
    db: Path
    env: dict[str, str]

    async def start_bot(self) -> Bot:
        identified = self.discord.identifies
        bot = Bot(await run_bot_process(self.env, self.db.parent))
        await self.discord.wait_for(lambda: self.discord.identifies > identified, timeout=60)
        await bot.wait_log("connected as")
        return bot

    async def ask(self, prompt: str, channel: int = 0, **options: object) -> InteractionRecord:
        return await self.discord.invoke_slash(
            "ask",
            user_id=self.alice.id,
            channel_id=self.channels[channel].id,
            guild_id=self.guild.id,
            options={"prompt": prompt, **options},
        )

    def rows(self, sql: str) -> list[tuple]:
        with closing(sqlite3.connect(self.db)) as db:
            return db.execute(sql).fetchall()

    async def wait_rows(self, sql: str, count: int) -> None:
        """Until ``sql`` returns ``count`` rows (the bot writes some things a moment later)."""
        async with asyncio.timeout(ROWS_WAIT):
            while True:
                try:
                    if len(self.rows(sql)) == count:
                        return
                except sqlite3.OperationalError:
                    pass  # the table does not exist (yet)
                await asyncio.sleep(0.05)

    def conversations(self) -> dict[str, list[dict[str, str]]]:
        """Every stored message, by session id, oldest first (what check_turns reads)."""
        sessions: dict[str, list[dict[str, str]]] = defaultdict(list)
        for session_id, role, content in self.rows(
            "SELECT session_id, role, content FROM messages ORDER BY id"
        ):
            sessions[session_id].append({"role": role, "content": content or ""})
        return dict(sessions)


@asynccontextmanager
async def setup(
    tmp_path: Path, *, tokens_per_second: float, channels: int = 3, **env: str
) -> AsyncIterator[Setup]:
    async with (
        DiscordEmulator() as discord_emu,
        OllamaEmulator(tokens_per_second=tokens_per_second) as ollama,
    ):
        guild = discord_emu.add_guild()
        rooms = [discord_emu.add_channel(guild.id, f"room{i}") for i in range(channels)]
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        db = tmp_path / "bot.db"
        values = emulator_env(
            discord_emu,
            ollama,
            guild.id,
            DATABASE_URL=f"sqlite+aiosqlite:///{db}",
            LOG_LEVEL="INFO",
            **env,
        )
        yield Setup(discord_emu, ollama, guild, rooms, alice, db, values)


def streaming(rec: InteractionRecord) -> bool:
    return rec.original is not None and CURSOR in rec.original.content


def last_message(rec: InteractionRecord) -> Message:
    assert rec.original is not None
    return ([rec.original, *rec.followups])[-1]


def finished(rec: InteractionRecord) -> bool:
    """The reply shows its footer (``… tokens``): the answer is whole."""
    return rec.original is not None and "tokens" in last_message(rec).content
