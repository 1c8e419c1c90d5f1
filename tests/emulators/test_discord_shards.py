"""The Discord emulator's sharding, exercised by discord.py's own AutoShardedBot: READY and
every guild event go to the session of the guild's shard, DMs to shard 0, an invalid shard
is closed with 4010, and IDENTIFYs over the rate limit get op 9."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from tests.emulators.discord_gateway import Session
from tests.emulators.discord_server import DiscordEmulator, Guild, User
from tests.emulators.discord_shards import CLOSE_INVALID_SHARD, CLOSE_SHARDING_REQUIRED
from tests.emulators.discord_state import SnowflakeGenerator, shard_of
from tests.emulators.discord_testbot import GUILD_READY_TIMEOUT, GuildTestBot, bot_running_on

IDENTIFY_PAUSE = 0.05  # seconds the test bots wait between IDENTIFYs (discord.py: 5)
GUILD_INTENTS = 1 | 1 << 9  # GUILDS | GUILD_MESSAGES
WS_TIMEOUT = 5.0  # seconds a raw gateway frame may take
# Long enough that a bot starting right after another IDENTIFY is still inside the window
# (it logs in and syncs its commands first), short enough not to slow the suite much.
LONG_IDENTIFY_INTERVAL = 1.5


class ShardBot(commands.AutoShardedBot):
    """One process of a sharded bot. /where answers with the process's name, so a test
    sees which process an interaction reached; commands are global (every shard's guilds)."""

    def __init__(self, name: str, shard_ids: Sequence[int] | None, shard_count: int | None) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            shard_ids=list(shard_ids) if shard_ids is not None else None,
            shard_count=shard_count,
            guild_ready_timeout=GUILD_READY_TIMEOUT,
        )
        self.name = name
        self.seen_messages: list[discord.Message] = []

        @self.tree.command(description="Say which process got the interaction")
        async def where(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"answered by {self.name}")

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:
            await asyncio.sleep(IDENTIFY_PAUSE)

    async def on_message(self, message: discord.Message) -> None:
        self.seen_messages.append(message)


@contextlib.asynccontextmanager
async def running(emu: DiscordEmulator, *bots: discord.Client) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for bot in bots:
            await stack.enter_async_context(bot_running_on(emu, bot))
        yield


def session_of(emu: DiscordEmulator, shard: list[int] | None) -> Session:
    (session,) = [s for s in emu.gateway.live_sessions() if s.shard == shard]
    return session


def dispatched(session: Session, event: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    frames = [json.loads(frame) for _, frame in session.buffer]
    return [(f["t"], f["d"]) for f in frames if event is None or f["t"] == event]


def two_shard_world(emu: DiscordEmulator) -> tuple[Guild, Guild, User]:
    """A guild on each of two shards, with alice in both."""
    g0 = emu.add_guild("zero", shard=(0, 2))
    g1 = emu.add_guild("one", shard=(1, 2))
    for guild in (g0, g1):
        emu.add_channel(guild.id, "general")
    alice = emu.add_user("alice")
    for guild in (g0, g1):
        emu.add_member(guild.id, alice.id)
    return g0, g1, alice


def general(emu: DiscordEmulator, guild: Guild) -> int:
    return guild.channel_ids[0]


# ----- guild ids ---------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_guild_ids_land_on_the_chosen_shard(count: int) -> None:
    ids = SnowflakeGenerator()
    made = [ids.next_on_shard(k, count) for _ in range(3) for k in range(count)]
    assert [shard_of(i, count) for i in made] == [k for _ in range(3) for k in range(count)]
    assert made == sorted(set(made))  # unique and increasing, as Discord's ids are
    assert ids.next() > made[-1]


def test_a_shard_outside_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match="no shard 2 among 2"):
        SnowflakeGenerator().next_on_shard(2, 2)


# ----- READY and GUILD_CREATE ----------------------------------------------------------


async def test_each_shard_is_sent_only_its_guilds() -> None:
    async with DiscordEmulator() as emu:
        g0, g1, _ = two_shard_world(emu)
        g1b = emu.add_guild("one again", shard=(1, 2))
        a, b = ShardBot("A", [0], 2), ShardBot("B", [1], 2)
        async with running(emu, a, b):
            assert {g.id for g in a.guilds} == {g0.id}
            assert {g.id for g in b.guilds} == {g1.id, g1b.id}
            for bot, shard, owned in ((a, [0, 2], {g0.id}), (b, [1, 2], {g1.id, g1b.id})):
                session = session_of(emu, shard)
                [(event, ready), *rest] = dispatched(session)
                assert event == "READY" and ready["shard"] == shard
                assert {int(g["id"]) for g in ready["guilds"]} == owned
                created = {int(d["id"]) for t, d in rest if t == "GUILD_CREATE"}
                assert created == owned
                assert list(bot.shards) == [shard[0]] and bot.shard_count == 2


async def test_one_process_with_both_shards_gets_every_guild() -> None:
    async with DiscordEmulator() as emu:
        g0, g1, _ = two_shard_world(emu)
        bot = ShardBot("both", [0, 1], 2)
        async with running(emu, bot):
            assert {g.id for g in bot.guilds} == {g0.id, g1.id}
            assert sorted(bot.shards) == [0, 1]
            assert {g.id: g.shard_id for g in bot.guilds} == {g0.id: 0, g1.id: 1}


async def test_an_unsharded_session_gets_everything() -> None:
    async with DiscordEmulator() as emu:
        g0, g1, alice = two_shard_world(emu)
        bot = GuildTestBot(g0.id)
        async with running(emu, bot):
            assert {g.id for g in bot.guilds} == {g0.id, g1.id}
            await emu.send_user_message(general(emu, g1), alice.id, "in one")
            await emu.send_user_message(general(emu, g0), alice.id, "in zero")
            await emu.wait_for(lambda: len(bot.seen_messages) == 2)
            assert "shard" not in dispatched(session_of(emu, None), "READY")[0][1]


# ----- events --------------------------------------------------------------------------


async def test_guild_events_go_only_to_the_shard_of_their_guild() -> None:
    async with DiscordEmulator() as emu:
        g0, g1, alice = two_shard_world(emu)
        a, b = ShardBot("A", [0], 2), ShardBot("B", [1], 2)
        async with running(emu, a, b):
            await emu.send_user_message(general(emu, g1), alice.id, "for B")
            await emu.send_user_message(general(emu, g0), alice.id, "for A")
            # Each connection is written in order: once A has its message, it would have
            # had B's before it.
            await emu.wait_for(lambda: bool(a.seen_messages) and bool(b.seen_messages))
            assert [m.content for m in a.seen_messages] == ["for A"]
            assert [m.content for m in b.seen_messages] == ["for B"]

            late = emu.add_guild("late", shard=(1, 2))
            room = emu.add_channel(g1.id, "new-room")
            await emu.wait_for(lambda: b.get_guild(late.id) is not None)
            await emu.wait_for(lambda: b.get_channel(room.id) is not None)
            shard0 = session_of(emu, [0, 2])
            assert late.id not in {int(d["id"]) for _, d in dispatched(shard0, "GUILD_CREATE")}
            assert dispatched(shard0, "CHANNEL_CREATE") == []
            assert a.get_guild(late.id) is None and a.get_channel(room.id) is None


async def test_direct_messages_go_to_shard_zero() -> None:
    async with DiscordEmulator() as emu:
        _, _, alice = two_shard_world(emu)
        a, b = ShardBot("A", [0], 2), ShardBot("B", [1], 2)
        async with running(emu, a, b):
            await emu.send_user_message(emu.dm_channel(alice.id).id, alice.id, "hello in private")
            await emu.wait_for(lambda: bool(a.seen_messages))
            assert [m.content for m in a.seen_messages] == ["hello in private"]
            assert dispatched(session_of(emu, [1, 2]), "MESSAGE_CREATE") == []


async def test_member_chunks_only_for_the_sessions_own_guilds() -> None:
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as http:
        g0, g1, _ = two_shard_world(emu)
        ws = await identify(http, emu, shard=[0, 2])
        await next_dispatch(ws, "READY")
        for guild in (g1, g0):  # another shard's guild first: it gets no answer
            await ws.send_json({"op": 8, "d": {"guild_id": str(guild.id), "query": "", "limit": 0}})
        chunk = await next_dispatch(ws, "GUILD_MEMBERS_CHUNK")
        assert chunk["guild_id"] == str(g0.id)


# ----- interactions --------------------------------------------------------------------


async def test_interactions_reach_the_shard_of_their_guild() -> None:
    async with DiscordEmulator() as emu:
        g0, g1, alice = two_shard_world(emu)
        a, b = ShardBot("A", [0], 2), ShardBot("B", [1], 2)
        async with running(emu, a, b):
            for guild, name in ((g1, "B"), (g0, "A"), (None, "A")):
                channel = general(emu, guild) if guild else emu.dm_channel(alice.id).id
                rec = await emu.invoke_slash(
                    "where",
                    user_id=alice.id,
                    channel_id=channel,
                    guild_id=guild.id if guild else None,
                )
                await rec.wait_done()
                assert rec.original is not None
                assert rec.original.content == f"answered by {name}"
            for shard, count in (([0, 2], 2), ([1, 2], 1)):
                assert len(dispatched(session_of(emu, shard), "INTERACTION_CREATE")) == count


async def test_rest_works_from_any_shard() -> None:
    """REST is per application: a process posts in a guild of another process's shard."""
    async with DiscordEmulator() as emu:
        _, g1, _ = two_shard_world(emu)
        a, b = ShardBot("A", [0], 2), ShardBot("B", [1], 2)
        async with running(emu, a, b):
            await a.get_partial_messageable(general(emu, g1)).send("posted by A")
            assert [m.content for m in emu.channel_messages(general(emu, g1))] == ["posted by A"]


async def test_an_interaction_for_a_shard_nobody_connected_is_refused() -> None:
    async with DiscordEmulator() as emu:
        _, g1, alice = two_shard_world(emu)
        async with running(emu, ShardBot("A", [0], 2)):
            with pytest.raises(RuntimeError, match="no connected session serves"):
                await emu.invoke_slash(
                    "where", user_id=alice.id, channel_id=general(emu, g1), guild_id=g1.id
                )


# ----- IDENTIFY ------------------------------------------------------------------------


async def identify(
    http: aiohttp.ClientSession, emu: DiscordEmulator, *, shard: object = None
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(emu.gateway_url)
    hello = await ws.receive_json(timeout=WS_TIMEOUT)
    assert hello["op"] == 10
    data: dict[str, Any] = {"token": emu.token, "intents": GUILD_INTENTS, "properties": {}}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": 2, "d": data})
    return ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next frame that is not a heartbeat ACK."""
    while True:
        msg = await ws.receive(timeout=WS_TIMEOUT)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the gateway closed: {msg.type.name} {msg.data}")
        frame = json.loads(msg.data)
        if frame["op"] != 11:
            return frame


async def next_dispatch(ws: aiohttp.ClientWebSocketResponse, event: str) -> dict[str, Any]:
    while True:
        frame = await next_frame(ws)
        if frame["op"] == 0 and frame["t"] == event:
            return frame["d"]


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    msg = await ws.receive(timeout=WS_TIMEOUT)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return msg.data


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], [0], [0, 2, 1], ["0", "2"], "0,2"])
async def test_an_invalid_shard_is_closed_with_4010(shard: object) -> None:
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as http:
        ws = await identify(http, emu, shard=shard)
        assert await close_code(ws) == CLOSE_INVALID_SHARD
        assert emu.identifies == 0


async def test_too_many_guilds_on_one_session_is_closed_with_4011() -> None:
    async with DiscordEmulator(max_guilds_per_shard=1) as emu, aiohttp.ClientSession() as http:
        two_shard_world(emu)
        ws = await identify(http, emu)
        assert await close_code(ws) == CLOSE_SHARDING_REQUIRED
        sharded = await identify(http, emu, shard=[1, 2])
        ready = await next_dispatch(sharded, "READY")
        assert ready["shard"] == [1, 2] and len(ready["guilds"]) == 1


async def test_identifies_of_one_bucket_within_the_interval_get_op_9() -> None:
    async with (
        DiscordEmulator(identify_interval=60) as emu,
        aiohttp.ClientSession() as http,
    ):
        first = await identify(http, emu, shard=[0, 2])
        await next_dispatch(first, "READY")
        second = await identify(http, emu, shard=[1, 2])  # bucket 1 % 1 == 0 % 1
        assert await next_frame(second) == {"op": 9, "d": False, "s": None, "t": None}
        assert (emu.identifies, emu.gateway.invalid_sessions) == (1, 1)


async def test_max_concurrency_gives_each_bucket_its_own_window() -> None:
    async with (
        DiscordEmulator(identify_interval=60, max_concurrency=2) as emu,
        aiohttp.ClientSession() as http,
    ):
        for shard in ([0, 4], [1, 4]):
            ws = await identify(http, emu, shard=shard)
            assert (await next_dispatch(ws, "READY"))["shard"] == shard
        late = await identify(http, emu, shard=[2, 4])  # bucket 0 again
        assert (await next_frame(late))["op"] == 9


async def test_discord_py_identifies_again_after_op_9() -> None:
    """Another process has just identified in the same bucket: the bot is told to wait
    (op 9), and discord.py identifies again after its pause, until the window has passed."""
    async with (
        DiscordEmulator(identify_interval=LONG_IDENTIFY_INTERVAL) as emu,
        aiohttp.ClientSession() as http,
    ):
        _, g1, _ = two_shard_world(emu)
        other = await identify(http, emu, shard=[0, 2])
        await next_dispatch(other, "READY")
        bot = ShardBot("B", [1], 2)
        async with running(emu, bot):
            assert emu.gateway.invalid_sessions >= 1
            assert emu.identifies == 2
            assert [g.id for g in bot.guilds] == [g1.id]


# ----- GET /gateway/bot -----------------------------------------------------------------


async def test_gateway_bot_recommends_shards_and_says_the_concurrency() -> None:
    async with (
        DiscordEmulator(recommended_shards=3, max_concurrency=16) as emu,
        aiohttp.ClientSession() as http,
    ):
        headers = {"Authorization": f"Bot {emu.token}"}
        async with http.get(f"{emu.api_base}/gateway/bot", headers=headers) as response:
            body = await response.json()
        assert body["url"] == emu.gateway_url and body["shards"] == 3
        assert body["session_start_limit"]["max_concurrency"] == 16


async def test_without_a_shard_count_discord_py_follows_the_recommendation() -> None:
    async with DiscordEmulator(recommended_shards=2) as emu:
        g0, g1, _ = two_shard_world(emu)
        bot = ShardBot("auto", None, None)
        async with running(emu, bot):
            assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
            assert {g.id for g in bot.guilds} == {g0.id, g1.id}
            assert sorted(s.shard for s in emu.gateway.live_sessions()) == [[0, 2], [1, 2]]
