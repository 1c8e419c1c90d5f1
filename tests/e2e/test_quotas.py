"""Fair use end to end: token quotas per member (refused with the refill time while others
are served; kept across a restart), /usage, the top users in /stats, /quota for admins only,
and the per-member cap of the queue. The real bot against the Discord and Ollama emulators."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    World,
    e2e_settings,
    open_command_to_everyone,
    private_notes,
    running_bot,
    wait_private_note,
    world,
)
from tests.e2e.test_admin import embeds_of
from tests.e2e.test_ask import ask, finished
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, DiscordEmulator, Message, User
from tests.emulators.ollama_server import OllamaEmulator

REFILL = re.compile(r"it refills <t:(\d+):R>\.")
HOUR_SECONDS = 3600


async def quota(w: World, sub: str, user: User | None = None, **options: Any) -> str:
    rec = await w.discord.invoke_slash(
        "quota", subcommand=sub, user_id=(user or w.admin).id, **w.where, options=options
    )
    return await wait_private_note(rec)


async def used(w: World, user: User, questions: int = 1) -> int:
    """The member's tokens today once ``questions`` answers are recorded: an answer's cost
    is written just after its reply is complete."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        top = await w.bot.quotas.top_users(f"guild:{w.guild.id}", 25)
        mine = [use for use in top if use.user_id == user.id]
        if (mine and mine[0].questions >= questions) or loop.time() > deadline:
            return mine[0].tokens if mine else 0
        await asyncio.sleep(0.02)


def next_hour_refill(note: str) -> int:
    match = REFILL.search(note)
    assert match is not None, note
    refill = int(match.group(1))
    assert refill % HOUR_SECONDS == 0 and time.time() < refill <= time.time() + HOUR_SECONDS
    return refill


async def test_a_member_over_quota_is_refused_while_another_is_served(w: World) -> None:
    said = await quota(w, "set", per_hour=10)
    assert "Per hour: 10 tokens · per day: no limit" in said
    await finished(await ask(w, "First question"))
    assert await used(w, w.alice) > 10
    chats = len([r for r in w.ollama.requests if r.path == "/api/chat"])

    refused = await ask(w, "Second question")
    note = await wait_private_note(refused)
    assert note.startswith("You've used your 10 tokens for this hour; it refills <t:")
    next_hour_refill(note)
    assert len([r for r in w.ollama.requests if r.path == "/api/chat"]) == chats

    await finished(await ask(w, "Bob's question", user=w.bob))  # bob is served
    for prompt in ("The admin's question", "And another"):  # admins are exempt
        await finished(await ask(w, prompt, user=w.admin))
        await used(w, w.admin)

    await quota(w, "off")
    await finished(await ask(w, "Third question"))


async def test_usage_shows_a_members_own_use_and_limits(w: World) -> None:
    rec = await w.discord.invoke_slash("usage", user_id=w.alice.id, **w.where)
    assert "This hour: 0 tokens (no limit)." in await wait_private_note(rec)
    await quota(w, "set", per_hour=100_000, per_day=1_000_000)
    await finished(await ask(w, "Count me"))
    tokens = await used(w, w.alice)
    rec = await w.discord.invoke_slash("usage", user_id=w.alice.id, **w.where)
    note = await wait_private_note(rec)
    assert f"This hour: {tokens:,} of 100,000 tokens, {100_000 - tokens:,} left" in note
    assert f"This day: {tokens:,} of 1,000,000 tokens" in note
    assert rec.original is not None and rec.original.ephemeral


async def test_admins_see_todays_top_users_in_stats(w: World) -> None:
    await finished(await ask(w, "One"))
    await finished(await ask(w, "Two, a little longer than the first"))
    alice = await used(w, w.alice, questions=2)
    await finished(await ask(w, "Three", user=w.bob))
    bob = await used(w, w.bob)
    rec = await w.discord.invoke_slash("stats", user_id=w.admin.id, **w.where)
    await rec.wait_done(lambda r: bool(embeds_of(r)))
    [embed] = embeds_of(rec)
    top = next(f for f in embed["fields"] if f["name"].startswith("Top users today"))
    assert top["value"].splitlines() == [
        f"1. <@{w.alice.id}>: {alice:,} tokens (2 questions)",
        f"2. <@{w.bob.id}>: {bob:,} tokens (1 questions)",
    ]


async def test_quota_commands_are_refused_to_members(w: World) -> None:
    open_command_to_everyone(w.discord, "quota")
    rec = await w.discord.invoke_slash(
        "quota",
        subcommand="set",
        user_id=w.alice.id,
        **w.where,
        options={"per_hour": 1},
        permissions=DEFAULT_PERMISSIONS,
    )
    assert "Manage Server" in await wait_private_note(rec)
    assert await w.bot.quotas.policy(f"guild:{w.guild.id}") is None


async def test_a_role_override_and_exemption(w: World) -> None:
    everyone = w.guild.id  # @everyone's role id is the server's
    await quota(w, "set", per_hour=10)
    said = await quota(w, "role", role=everyone, per_hour=0)
    assert f"<@&{everyone}>: per hour no limit, per day the server's" in said
    await finished(await ask(w, "One"))
    assert await used(w, w.alice) > 10
    await finished(await ask(w, "Two"))  # the role lifts the limit
    await used(w, w.alice, questions=2)
    said = await quota(w, "role", role=everyone)  # nothing given: the override goes
    assert f"<@&{everyone}>" not in said
    note = await wait_private_note(await ask(w, "Three"))
    assert note.startswith("You've used your 10 tokens for this hour")


async def test_the_quota_survives_a_restart(database_url: str) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice, admin = discord_emu.add_user("alice"), discord_emu.add_user("admin")
        discord_emu.add_member(guild.id, alice.id)
        settings = e2e_settings(ollama, database_url, guild)
        where = {"channel_id": channel.id, "guild_id": guild.id}

        async with running_bot(discord_emu, settings) as bot:
            await bot.quotas.set_limits(f"guild:{guild.id}", per_hour=None, per_day=5)
            rec = await discord_emu.invoke_slash(
                "ask", user_id=alice.id, **where, options={"prompt": "Before the restart"}
            )
            await finished(rec)
            await rec.wait_done(lambda r: r.followups is not None)
        async with running_bot(discord_emu, settings):
            rec = await discord_emu.invoke_slash(
                "ask", user_id=alice.id, **where, options={"prompt": "After the restart"}
            )
            note = await wait_private_note(rec)
        assert note.startswith("You've used your 5 tokens for this day; it refills <t:")
        assert discord_emu.identifies == 2  # really two runs of the bot
        del admin


async def test_a_mention_over_quota_gets_a_reply_without_pings(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        await quota(w, "set", per_hour=10)

        def replies() -> list[Message]:
            return [
                m
                for m in w.discord.channel_messages(w.channel.id)
                if m.author_id == w.discord.bot_user_id and m.reference is not None
            ]

        bot = [w.discord.bot_user_id]
        await w.discord.send_user_message(w.channel.id, w.alice.id, "hello", mentions=bot)
        await w.discord.wait_for(lambda: any("tokens" in m.content for m in replies()), 10)
        await used(w, w.alice)
        await w.discord.send_user_message(w.channel.id, w.alice.id, "again", mentions=bot)
        await w.discord.wait_for(lambda: len(replies()) == 2, 10)
        (refusal,) = [m for m in replies() if not m.content.startswith("Echo: hello")]
        assert refusal.content.startswith("You've used your 10 tokens for this hour")
        assert refusal.allowed_mentions is not None and refusal.allowed_mentions["parse"] == []
        assert not refusal.pinged


async def test_one_member_cannot_fill_the_queue(tmp_path: Path) -> None:
    async with world(tmp_path, MAX_QUEUED_PER_MEMBER="2") as w:
        # The first answer is slow; the second waits behind it in the channel's conversation.
        w.ollama.stall_before_first_token(3.0)
        first = await ask(w, "One")
        second = await ask(w, "Two")
        queue = w.bot.manager.queue
        await w.discord.wait_for(lambda: queue.member_count(f"user:{w.alice.id}") == 2, 5)
        third = await ask(w, "Three")
        note = await wait_private_note(third)
        assert note == "You already have 2 questions waiting; ask again when one is answered."
        await finished(await ask(w, "Bob's", user=w.bob))  # others are not held back
        await finished(first)
        await finished(second)
        await finished(await ask(w, "Four"))  # answered: room again
        assert not private_notes(first) and not private_notes(second)
