"""The Discord emulator, exercised by the unmodified discord.py client: rate limits, a
gateway resume, channels, messages and mentions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import discord.http
import pytest

from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    DiscordEmulator,
    Permission,
)
from tests.emulators.discord_server_harness import Harness, bot_channel, harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


# ----- rate limits ----------------------------------------------------------------


async def test_forced_429_is_waited_out_and_applied_once(h: Harness) -> None:
    h.emu.force_429(1, retry_after=0.3, route_contains="/messages/@original")
    rec = await h.emu.invoke_slash("stream", user_id=h.alice.id, **h.where, options={"edits": 1})
    await rec.wait_done(lambda r: len(r.followups) == 1)
    assert h.emu.count_429() == 1
    edits = [c for c in h.emu.calls if c.route.endswith("/messages/{message_id}")]
    assert [c.status for c in edits] == [429, 200]
    assert edits[0].headers["Via"] == "1.1 google"
    assert edits[0].response["retry_after"] == 0.3
    assert edits[1].at - edits[0].at >= 0.25  # discord.py slept on retry_after
    assert rec.original is not None
    assert [content for _, content in rec.original.edits] == ["", "part 0"]


async def test_edit_burst_waits_on_headers_without_429() -> None:
    async with harness(edit_limit=5, edit_window=0.5) as h:
        rec = await h.emu.invoke_slash("burst", user_id=h.alice.id, **h.where)
        await rec.wait_done(
            lambda r: r.original is not None and r.original.content == "edit 19", timeout=15
        )
        patches = [c for c in h.emu.calls if c.method == "PATCH"]
        assert len(patches) == 20
        assert h.emu.count_429() == 0
        assert patches[4].headers["X-RateLimit-Remaining"] == "0"
        # 20 edits at 5 per 0.5 s need at least three full windows.
        assert patches[-1].at - patches[0].at >= 1.45
        assert rec.original is not None and len(rec.original.edits) == 21


async def test_the_global_limit_counts_bot_routes_not_webhooks() -> None:
    # 50 requests per second per bot across its routes; interaction webhooks are exempt.
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as session:
        guild = emu.add_guild()
        channel = emu.add_channel(guild.id)
        auth = {"Authorization": f"Bot {emu.token}"}
        statuses, global_flags = [], []
        for _ in range(60):
            async with session.get(f"{emu.api_base}/channels/{channel.id}", headers=auth) as r:
                statuses.append(r.status)
                if r.status == 429:
                    body = await r.json()
                    global_flags.append((body["global"], r.headers.get("X-RateLimit-Global")))
                    assert r.headers["X-RateLimit-Scope"] == "global"
        assert statuses.count(200) == 50
        assert statuses.count(429) == 10
        assert set(global_flags) == {(True, "true")}
        # A webhook route is not held back by the spent global limit.
        async with session.get(f"{emu.api_base}/webhooks/1/nope") as r:
            assert r.status != 429


async def test_the_global_limit_can_be_lifted() -> None:
    async with DiscordEmulator(global_limit=None) as emu, aiohttp.ClientSession() as session:
        channel = emu.add_channel(emu.add_guild().id)
        auth = {"Authorization": f"Bot {emu.token}"}
        # 60 requests over two routes: within each route's bucket, over the global limit.
        for route in ("/users/@me", f"/channels/{channel.id}") * 30:
            async with session.get(f"{emu.api_base}{route}", headers=auth) as r:
                assert r.status == 200


# ----- gateway resume ---------------------------------------------------------------


async def test_op7_reconnect_resumes_and_replays(h: Harness) -> None:
    await h.emu.request_reconnect(wait=False)
    # Dispatched while the client is away: must be replayed after RESUME.
    await h.emu.send_user_message(h.channel.id, h.alice.id, "while away")
    await h.emu.wait_resumed(1)
    assert h.emu.identifies == 1
    resume = next(f for f in h.emu.gateway.received if f["op"] == 6)
    assert resume["d"]["session_id"] in h.emu.gateway.sessions
    await h.emu.wait_for(lambda: any(m.content == "while away" for m in h.bot.seen_messages))
    rec = await h.emu.invoke_slash("secret", user_id=h.alice.id, **h.where)
    await rec.wait_done()
    assert rec.original is not None and rec.original.content == "hush"


# ----- channels, messages, mentions ------------------------------------------------


async def test_channel_history_newest_first_and_permissions(h: Harness) -> None:
    for text in ("one", "two", "three"):
        h.emu.add_message(h.channel.id, h.alice.id, text)
    channel = await bot_channel(h)
    assert [m.content async for m in channel.history(limit=10)] == ["three", "two", "one"]
    assert [m.content async for m in channel.history(limit=2)] == ["three", "two"]
    everything = DEFAULT_PERMISSIONS | Permission.MENTION_EVERYONE
    h.emu.set_bot_permissions(h.channel.id, everything & ~Permission.READ_MESSAGE_HISTORY)
    assert [
        m async for m in channel.history(limit=10)
    ] == []  # as documented: no error, no messages
    h.emu.set_bot_permissions(h.channel.id, everything & ~Permission.VIEW_CHANNEL)
    with pytest.raises(discord.Forbidden) as excinfo:
        [m async for m in channel.history(limit=10)]
    assert excinfo.value.code == 50001
    await h.emu.wait_for(lambda: not channel.permissions_for(channel.guild.me).view_channel)


async def test_message_create_reaches_on_message(h: Harness) -> None:
    sent = await h.emu.send_user_message(
        h.channel.id, h.alice.id, "hello", mentions=[h.emu.bot_user_id]
    )
    await h.emu.wait_for(lambda: bool(h.bot.seen_messages))
    seen = h.bot.seen_messages[0]
    assert seen.id == sent.id
    assert seen.content == f"<@{h.emu.bot_user_id}> hello"
    assert h.bot.user in seen.mentions
    assert seen.author.id == h.alice.id


async def test_message_content_needs_the_intent_unless_mentioned() -> None:
    intents = discord.Intents.default()
    intents.message_content = False
    async with harness(intents=intents) as h:
        await h.emu.send_user_message(h.channel.id, h.alice.id, "plain")
        await h.emu.send_user_message(
            h.channel.id, h.alice.id, "ping", mentions=[h.emu.bot_user_id]
        )
        await h.emu.wait_for(lambda: len(h.bot.seen_messages) == 2)
        assert [m.content for m in h.bot.seen_messages] == ["", f"<@{h.emu.bot_user_id}> ping"]


async def test_allowed_mentions_recorded_and_pings_computed(h: Harness) -> None:
    safe = await h.emu.invoke_slash(
        "mention", user_id=h.alice.id, **h.where, options={"safe": True}
    )
    await safe.wait_done()
    assert safe.original is not None
    assert safe.original.allowed_mentions == {"parse": []}
    assert not safe.original.pinged
    unsafe = await h.emu.invoke_slash(
        "mention", user_id=h.alice.id, **h.where, options={"safe": False}
    )
    await unsafe.wait_done()
    assert unsafe.original is not None
    assert unsafe.original.allowed_mentions is None
    assert unsafe.original.pinged and unsafe.original.notified.users == {h.alice.id}
    channel = await bot_channel(h)
    loud = await channel.send("@everyone look")
    quiet = await channel.send("@everyone look", allowed_mentions=discord.AllowedMentions.none())
    assert h.emu.message(loud.id).mentions.everyone
    assert not h.emu.message(quiet.id).pinged
    # An edit without allowed_mentions parses afresh: Discord does not keep them.
    await quiet.edit(content=f"<@{h.alice.id}> edited")
    assert h.emu.message(quiet.id).pinged


async def test_message_limits(h: Harness) -> None:
    channel = await bot_channel(h)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send(embed=discord.Embed(description="d" * 4097))
    assert too_long.value.code == 50035
    fields = discord.Embed(title="t")
    for i in range(26):
        fields.add_field(name=f"n{i}", value="v")
    with pytest.raises(discord.HTTPException) as too_many:
        await channel.send(embed=fields)
    assert too_many.value.code == 50035
    big = [discord.Embed(description="d" * 4000) for _ in range(2)]
    with pytest.raises(discord.HTTPException) as too_big:
        await channel.send(embeds=big)
    assert too_big.value.code == 50035
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send()
    assert (empty.value.status, empty.value.code) == (400, 50006)
    reply_to = h.emu.add_message(h.channel.id, h.alice.id, "question")
    sent = await channel.send("answer", reference=channel.get_partial_message(reply_to.id))
    stored = h.emu.message(sent.id)
    assert stored.reference is not None and stored.reference["message_id"] == str(reply_to.id)
    assert stored.notified.users == {h.alice.id}  # replies ping their author by default
    started = time.monotonic()
    async with channel.typing():
        pass
    assert h.emu.typing and h.emu.typing[-1][0] >= started
