"""Stopping `python -m bot`: SIGTERM and SIGINT drain answers in flight, SIGKILL is cleaned
up on the next start, and an unreachable Discord is one line, not a traceback."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path

from tests.bot.test_main import emulator_env, run_bot_process
from tests.e2e.conftest import private_notes
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


@dataclass
class Bot:
    """A running `python -m bot` and what it logged so far."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)

    async def wait_log(self, needle: str, timeout: float = 30) -> str:  # noqa: ASYNC109
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"exited before logging {needle!r}:\n{self.text}")
                self.log.append(raw.decode())
                if needle in self.log[-1]:
                    return self.log[-1]

    async def wait_exit(self, timeout: float = 30) -> int:  # noqa: ASYNC109
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
        async with asyncio.timeout(15):
            while True:
                try:
                    if len(self.rows(sql)) == count:
                        return
                except sqlite3.OperationalError:
                    pass  # the table does not exist (yet)
                await asyncio.sleep(0.05)


@asynccontextmanager
async def setup(tmp_path: Path, *, tokens_per_second: float, **env: str) -> AsyncIterator[Setup]:
    async with (
        DiscordEmulator() as discord_emu,
        OllamaEmulator(tokens_per_second=tokens_per_second) as ollama,
    ):
        guild = discord_emu.add_guild()
        channels = [discord_emu.add_channel(guild.id, f"room{i}") for i in range(3)]
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
        yield Setup(discord_emu, ollama, guild, channels, alice, db, values)


def streaming(rec: InteractionRecord) -> bool:
    return rec.original is not None and CURSOR in rec.original.content


def last_message(rec: InteractionRecord) -> Message:
    assert rec.original is not None
    return ([rec.original, *rec.followups])[-1]


async def test_sigterm_lets_the_answer_in_flight_finish(tmp_path: Path) -> None:
    """SIGTERM: the answer finishes (stored once), a new /ask is told to wait, exit 0."""
    reply = " ".join(f"word{i}" for i in range(40))
    async with setup(tmp_path, tokens_per_second=20, SHUTDOWN_GRACE_SECONDS="30") as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        rec = await s.ask("hi")
        await rec.wait_done(streaming, timeout=30)
        bot.proc.send_signal(signal.SIGTERM)
        await bot.wait_log("SIGTERM")
        late = await s.ask("are you there?")
        await late.wait_done(lambda r: bool(private_notes(r)), timeout=10)
        assert "restarting" in private_notes(late)[0]
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        final = last_message(rec)
        assert final.content.startswith(reply) and "tokens" in final.content, bot.text[-3000:]
        assert CURSOR not in final.content and final.components == []
        assert s.rows("SELECT role, content FROM messages") == [
            ("user", "hi"),
            ("assistant", reply),
        ]
        assert "Traceback" not in bot.text
        # Everything released before the process ended, the database last.
        assert "request manager closed" in bot.text, bot.text[-3000:]


async def test_sigint_interrupts_an_answer_that_outlasts_the_grace(tmp_path: Path) -> None:
    """SIGINT with a 1 s grace: the long answer ends with a notice, no cursor, no button;
    what it had said is remembered, as after the Stop button; exit 0."""
    reply = " ".join(f"word{i}" for i in range(300))
    async with setup(tmp_path, tokens_per_second=10, SHUTDOWN_GRACE_SECONDS="1") as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        rec = await s.ask("hi")
        await rec.wait_done(streaming, timeout=30)
        bot.proc.send_signal(signal.SIGINT)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        final = last_message(rec)
        assert RESTARTING in final.content
        assert CURSOR not in final.content and final.components == []
        stored = s.rows("SELECT role, content FROM messages")
        assert [role for role, _ in stored] == ["user", "assistant"]
        partial = stored[1][1]
        assert partial and reply.startswith(partial) and len(partial) < len(reply)
        assert "Traceback" not in bot.text
        assert "request manager closed" in bot.text, bot.text[-3000:]


async def test_sigkill_leaves_replies_that_the_next_start_finishes(tmp_path: Path) -> None:
    """After a SIGKILL the next start ends the interrupted replies (public and private)
    with a notice and without their Stop buttons, and forgets them."""
    reply = " ".join(f"word{i}" for i in range(300))
    async with setup(tmp_path, tokens_per_second=10) as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        public = await s.ask("hi")
        private = await s.ask("psst", 1, private=True)
        await public.wait_done(streaming, timeout=30)
        await private.wait_done(streaming, timeout=30)
        assert public.original is not None and public.original.components
        await s.wait_rows("SELECT * FROM live_replies", 2)
        bot.proc.kill()
        await bot.wait_exit()

        bot = await s.start_bot()
        for rec in (public, private):
            await rec.wait_done(lambda r: CRASHED in last_message(r).content, timeout=30)
            final = last_message(rec)
            assert CURSOR not in final.content and final.components == []
            assert final.content.startswith("word0 word1")
        await s.wait_rows("SELECT * FROM live_replies", 0)
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        assert "Traceback" not in bot.text


async def test_a_reply_that_finished_just_before_a_crash_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    """Its record was not yet forgotten (that is batched), but the answer was whole on
    screen: the next start adds no crash notice to it, and forgets it."""
    reply = " ".join(f"word{i}" for i in range(15))  # 1.5 s: long enough to be recorded
    async with setup(tmp_path, tokens_per_second=10) as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        rec = await s.ask("hi")
        await s.wait_rows("SELECT * FROM live_replies", 1)
        await rec.wait_done(lambda r: "tokens" in last_message(r).content, timeout=30)
        bot.proc.kill()  # before the record is forgotten, a second after the end
        await bot.wait_exit()
        assert s.rows("SELECT COUNT(*) FROM live_replies") == [(1,)]
        whole = last_message(rec).content

        bot = await s.start_bot()
        await s.wait_rows("SELECT * FROM live_replies", 0)
        await bot.wait_log("left as they are")
        assert last_message(rec).content == whole and CRASHED not in whole
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]


async def test_replies_whose_token_expired_are_finished_or_dropped(tmp_path: Path) -> None:
    """An interaction token lasts 15 minutes: after that a public reply is still finished
    (through the channel), a private one cannot be and is dropped with one log line, and
    a reply someone deleted meanwhile is dropped too; start-up goes on."""
    reply = " ".join(f"word{i}" for i in range(300))
    async with setup(tmp_path, tokens_per_second=10) as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        public = await s.ask("hi")
        private = await s.ask("psst", 1, private=True)
        deleted = await s.ask("and this?", 2)
        for rec in (public, private, deleted):
            await rec.wait_done(streaming, timeout=30)
        await s.wait_rows("SELECT * FROM live_replies", 3)
        bot.proc.kill()
        await bot.wait_exit()
        for rec in (public, private, deleted):
            rec.dispatched_at -= 16 * 60  # the emulator's clock for the token's lifetime
        assert deleted.original is not None
        deleted.original.deleted = True

        bot = await s.start_bot()
        await public.wait_done(lambda r: CRASHED in last_message(r).content, timeout=30)
        assert public.original is not None and public.original.components == []
        await s.wait_rows("SELECT * FROM live_replies", 0)
        assert private.original is not None and CRASHED not in private.original.content
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        dropped = [x for x in bot.text.splitlines() if "could not finish an interrupted reply" in x]
        assert len(dropped) == 2, bot.text[-3000:]
        assert "Traceback" not in bot.text


async def test_a_stop_while_starting_waits_for_start_up_then_exits_cleanly(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path, tokens_per_second=10) as s:
        bot = Bot(await run_bot_process(s.env, s.db.parent))
        await s.discord.wait_for(lambda: bool(s.discord.calls), timeout=60)  # logging in
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        assert "Traceback" not in bot.text and "ERROR" not in bot.text, bot.text[-3000:]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_discord_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = closed_port()
    env = {
        "DISCORD_TOKEN": "test-token",
        "DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    }
    proc = await run_bot_process(env, tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert f"cannot reach Discord at 127.0.0.1:{port}" in errors[0]
