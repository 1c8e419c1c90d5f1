"""Several processes of one bot through Discord's sharding (SHARD_COUNT, SHARD_IDS): each
process answers in the servers of its shards only, all of them on one database.

Each process here is a real bot built by create_bot, with an Ollama of its own whose replies
name the process, so an answer says which process wrote it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core.config import Settings
from bot.discord_app.app import OllacordBot, create_bot
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.live_replies import LiveReplyRecord, LiveReplyStore
from tests.e2e.conftest import e2e_settings
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    InteractionRecord,
    Message,
    Permission,
    User,
    running_client,
)
from tests.emulators.ollama_server import OllamaEmulator

SHARD_COUNT = 2
# The emulator enforces Discord's IDENTIFY rate limit with this interval, and the bots wait
# as long between IDENTIFYs (Discord and discord.py: 5 s), so processes starting together
# are paced by op 9 as on Discord, quickly.
IDENTIFY_INTERVAL = 0.05
CURSOR = "▌"
CRASHED = "Interrupted by a restart; ask again."


@dataclass
class Cluster:
    """One Discord application with a guild (and its channel) on each shard."""

    discord: DiscordEmulator
    guilds: list[Guild]  # guilds[k] is on shard k
    channels: list[Channel]  # channels[k] is in guilds[k]
    alice: User
    admin: User
    database_url: str
    tmp_path: Path

    def settings(self, ollama: OllamaEmulator, shard_ids: str, **env: str) -> Settings:
        values = {"SHARD_COUNT": str(SHARD_COUNT), "SHARD_IDS": shard_ids, **env}
        # No DEV_GUILD_ID: commands are global, so every shard's guilds have them.
        return e2e_settings(ollama, self.database_url, self.guilds[0], DEV_GUILD_ID="", **values)

    async def ask(self, shard: int, prompt: str) -> InteractionRecord:
        return await self.discord.invoke_slash(
            "ask",
            user_id=self.alice.id,
            channel_id=self.channels[shard].id,
            guild_id=self.guilds[shard].id,
            options={"prompt": prompt},
        )


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with DiscordEmulator(identify_interval=IDENTIFY_INTERVAL) as discord_emu:
        guilds = [discord_emu.add_guild(f"shard {k}", shard=(k, SHARD_COUNT)) for k in (0, 1)]
        channels = [discord_emu.add_channel(g.id, "general") for g in guilds]
        alice, admin = discord_emu.add_user("alice"), discord_emu.add_user("admin")
        for guild in guilds:
            discord_emu.add_member(guild.id, alice.id)
            discord_emu.add_member(
                guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
            )
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        # Migrated once, as `ollacord migrate` would before the processes start.
        engine = create_engine(database_url)
        await upgrade_database(engine)
        await engine.dispose()
        yield Cluster(discord_emu, guilds, channels, alice, admin, database_url, tmp_path)


@contextlib.asynccontextmanager
async def process(c: Cluster, settings: Settings) -> AsyncIterator[OllacordBot]:
    """One bot process (create_bot) running until the block ends."""
    bot = create_bot(settings, guild_ready_timeout=0.05, identify_interval=IDENTIFY_INTERVAL)
    with c.discord.patch_discord():
        async with running_client(bot, settings.discord_token or ""):
            yield bot


@contextlib.asynccontextmanager
async def processes(c: Cluster, *settings: Settings) -> AsyncIterator[tuple[OllacordBot, ...]]:
    """Several processes started at once, as a supervisor starts them."""
    async with contextlib.AsyncExitStack() as stack:
        bots = await asyncio.gather(*(stack.enter_async_context(process(c, s)) for s in settings))
        yield tuple(bots)


@contextlib.asynccontextmanager
async def ollamas(count: int) -> AsyncIterator[list[OllamaEmulator]]:
    """One Ollama per process, each replying "from process k"."""
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(OllamaEmulator()) for _ in range(count)]
        for k, server in enumerate(servers):
            server.set_reply(f"from process {k}")
        yield servers


def chats(ollama: OllamaEmulator) -> int:
    return sum(1 for r in ollama.requests if r.path == "/api/chat")


async def answer_of(rec: InteractionRecord) -> str:
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content, 10)
    assert rec.original is not None
    return rec.original.content


# ----- two processes -----------------------------------------------------------------


async def test_each_process_answers_ask_in_the_servers_of_its_shard(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(2) as (o0, o1),
        processes(c, c.settings(o0, "0"), c.settings(o1, "1")) as (bot0, bot1),
    ):
        assert [g.id for g in bot0.guilds] == [c.guilds[0].id]
        assert [g.id for g in bot1.guilds] == [c.guilds[1].id]

        assert (await answer_of(await c.ask(1, "who is there?"))).startswith("from process 1")
        assert (chats(o0), chats(o1)) == (0, 1)
        assert (await answer_of(await c.ask(0, "and here?"))).startswith("from process 0")
        assert (chats(o0), chats(o1)) == (1, 1)


async def test_each_process_answers_mentions_in_the_servers_of_its_shard(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, ollamas(2) as (o0, o1):
        env = {"MENTION_CHAT": "true"}
        async with processes(c, c.settings(o0, "0", **env), c.settings(o1, "1", **env)):
            for shard in (1, 0):
                await c.discord.send_user_message(
                    c.channels[shard].id, c.alice.id, "hello?", mentions=[c.discord.bot_user_id]
                )
                [reply] = await bot_answers(c, c.channels[shard], 1)
                assert reply.content.startswith(f"from process {shard}")
            assert (chats(o0), chats(o1)) == (1, 1)


async def test_both_processes_answer_at_the_same_time(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(2) as (o0, o1),
        processes(c, c.settings(o0, "0"), c.settings(o1, "1")),
    ):
        asked = [await c.ask(k % 2, f"question {k}") for k in range(6)]
        answers = await asyncio.gather(*(answer_of(rec) for rec in asked))
        for k, answer in enumerate(answers):
            assert answer.startswith(f"from process {k % 2}")
        assert (chats(o0), chats(o1)) == (3, 3)


async def test_a_process_leaves_the_other_shards_interrupted_replies_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that starts (a restart after a crash, say) ends the replies a crash left
    in its own servers and DMs, not the one another process is writing right now."""
    caplog.set_level(logging.INFO, logger="bot.discord_app")
    async with cluster(tmp_path) as c, ollamas(2) as (o0, o1):
        # Process 1's answer stays in flight for the whole test.
        o1.set_reply(" ".join(f"word{i}" for i in range(50)))
        o1.stall_mid_stream(after_tokens=3, seconds=60)
        fast = {"SHUTDOWN_GRACE_SECONDS": "0"}
        async with process(c, c.settings(o1, "1", **fast)) as bot1:
            writing = await c.ask(1, "a long one")
            await writing.wait_done(
                lambda r: r.original is not None and CURSOR in r.original.content
            )
            await c.discord.wait_for(lambda: recorded(c) == [c.channels[1].id])
            crashed = [
                left_by_a_crash(c, c.channels[0].id, c.guilds[0].id),
                left_by_a_crash(c, c.discord.dm_channel(c.alice.id).id, None),
            ]
            store = LiveReplyStore(create_sessionmaker(bot1.manager.services.engine))
            await store.apply([LiveReplyRecord(m.channel_id, (m.id,)) for m in crashed], [])

            async with process(c, c.settings(o0, "0", **fast)):
                for message in crashed:
                    await c.discord.wait_for(lambda m=message: CRASHED in m.content, timeout=10)
                ended = "ended 2 of 2 replies a restart had interrupted"
                await c.discord.wait_for(lambda: ended in messages(caplog))
                assert left_to_others(caplog) == 1
                assert recorded(c) == [c.channels[1].id]
                assert writing.original is not None
                assert not any(CRASHED in text for _, text in writing.original.edits)


# ----- one process, both shards ----------------------------------------------------------


async def test_one_process_with_both_shards_answers_everywhere(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(1) as (o0,),
        process(c, c.settings(o0, "0-1")) as bot,
    ):
        assert sorted(bot.shards) == [0, 1]
        assert {g.id for g in bot.guilds} == {g.id for g in c.guilds}
        for shard in (0, 1):
            assert (await answer_of(await c.ask(shard, "hi"))).startswith("from process 0")
        assert chats(o0) == 2


async def test_without_shard_ids_a_process_runs_every_shard(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(1) as (o0,),
        process(c, c.settings(o0, "")) as bot,
    ):
        assert sorted(bot.shards) == [0, 1]
        sessions = sorted(s.shard for s in c.discord.gateway.live_sessions())
        assert sessions == [[0, SHARD_COUNT], [1, SHARD_COUNT]]


# ----- health, /stats, logs ----------------------------------------------------------------


async def test_healthz_shows_the_shards_of_the_process(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(1) as (o0,),
        process(c, c.settings(o0, "0-1", HTTP_PORT="0")) as bot,
    ):
        status, body = await healthz(bot)
        discord = body["components"]["discord"]
        assert status == 200 and discord["status"] == "up"
        assert discord["shard_count"] == SHARD_COUNT
        assert [(s["id"], s["status"]) for s in discord["shards"]] == [(0, "up"), (1, "up")]
        assert all(s["latency_ms"] is None or s["latency_ms"] >= 0 for s in discord["shards"])

        shard = bot.get_shard(1)
        assert shard is not None
        await shard.disconnect()
        status, body = await healthz(bot)
        discord = body["components"]["discord"]
        assert status == 503 and discord["status"] == "down"
        assert [(s["id"], s["status"]) for s in discord["shards"]] == [(0, "up"), (1, "down")]

        await shard.connect()
        status, body = await healthz(bot)
        assert status == 200, body


async def test_stats_says_which_process_answered(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        ollamas(2) as (o0, o1),
        processes(c, c.settings(o0, "0"), c.settings(o1, "1")),
    ):
        rec = await c.discord.invoke_slash(
            "stats", user_id=c.admin.id, channel_id=c.channels[1].id, guild_id=c.guilds[1].id
        )
        await rec.wait_done(lambda r: r.original is not None and bool(r.original.embeds))
        assert rec.original is not None
        footer = rec.original.embeds[0]["footer"]["text"]
        assert "shard 1;" in footer and "shard 1 of 2" in footer


async def test_the_logs_name_the_shards(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.discord_app")
    async with cluster(tmp_path) as c, ollamas(1) as (o0,), process(c, c.settings(o0, "0-1")):
        ready = {f"shard {k} of 2 ready with 1 servers" for k in (0, 1)}
        await c.discord.wait_for(lambda: ready <= messages(caplog))
        said = messages(caplog)
        assert {"shard 0 of 2 connected", "shard 1 of 2 connected"} <= said
        assert any(m.endswith("to 2 servers on shards 0-1 of 2") for m in said)


def test_unsharded_settings_build_the_plain_bot(tmp_path: Path) -> None:
    """Without SHARD_COUNT nothing changes: one plain connection (no AutoShardedBot)."""
    settings = Settings.from_mapping({"DISCORD_TOKEN": "t", "DATABASE_URL": "sqlite+aiosqlite://"})
    bot = create_bot(settings)
    assert type(bot) is OllacordBot and bot.shard_count is None


# ----- helpers -------------------------------------------------------------------------------


def recorded(c: Cluster) -> list[int]:
    """The channels of the replies recorded as being written, read as another process would."""
    path = c.database_url.removeprefix("sqlite+aiosqlite:///")
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT channel_id FROM live_replies ORDER BY id")]


def left_by_a_crash(c: Cluster, channel_id: int, guild_id: int | None) -> Message:
    """A bot message left with its cursor, as a crash leaves a reply."""
    world = c.discord.world
    message = Message(
        id=world.ids.next(),
        channel_id=channel_id,
        guild_id=guild_id,
        author_id=c.discord.bot_user_id,
        content=f"half an answer {CURSOR}",
    )
    return world.store_message(message)


def left_to_others(caplog: pytest.LogCaptureFixture) -> int:
    said = [m for m in messages(caplog) if "to the processes of other shards" in m]
    return int(said[0].split()[1]) if said else 0


def messages(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {r.getMessage() for r in caplog.records}


async def bot_answers(c: Cluster, channel: Channel, count: int) -> list[Message]:
    def answers() -> list[Message]:
        return [
            m
            for m in c.discord.channel_messages(channel.id)
            if m.author_id == c.discord.bot_user_id and "-# " in m.content
        ]

    await c.discord.wait_for(lambda: len(answers()) >= count, timeout=10)
    return answers()


async def healthz(bot: OllacordBot) -> tuple[int, dict[str, Any]]:
    assert bot.http_server is not None
    url = f"http://127.0.0.1:{bot.http_server.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()
