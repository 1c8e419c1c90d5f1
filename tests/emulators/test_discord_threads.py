"""Threads in the Discord emulator, driven by the unmodified discord.py client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from tests.emulators.discord_messages import ApiError
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    Permission,
    User,
)
from tests.emulators.discord_testbot import GuildTestBot, bot_running_on


class ThreadBot(GuildTestBot):
    """Keeps the thread events discord.py dispatches."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(guild_id)
        self.created: list[discord.Thread] = []
        self.updates: list[tuple[bool, bool]] = []  # (archived before, after)
        self.events: list[str] = []  # thread updates and messages, in arrival order

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.created.append(thread)

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        self.events.append(f"update archived={payload.data['thread_metadata']['archived']}")

    async def on_thread_update(self, before: discord.Thread, after: discord.Thread) -> None:
        self.updates.append((before.archived, after.archived))

    async def on_message(self, message: discord.Message) -> None:
        await super().on_message(message)
        self.events.append(f"message {message.content}")


@dataclass
class Harness:
    emu: DiscordEmulator
    bot: ThreadBot
    guild: Guild
    channel: Channel
    alice: User

    def text_channel(self) -> discord.TextChannel:
        channel = self.bot.get_channel(self.channel.id)
        assert isinstance(channel, discord.TextChannel)
        return channel


@contextlib.asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    async with DiscordEmulator() as emu:
        guild = emu.add_guild("Test Guild")
        channel = emu.add_channel(guild.id, "general")
        alice = emu.add_user("alice")
        emu.add_member(guild.id, alice.id)
        bot = ThreadBot(guild.id)
        async with bot_running_on(emu, bot):
            yield Harness(emu, bot, guild, channel, alice)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


async def test_a_thread_started_from_a_message(h: Harness) -> None:
    anchor = await h.text_channel().send("a question")
    thread = await anchor.create_thread(name="A question", auto_archive_duration=60)
    assert thread.id == anchor.id  # Discord gives the thread its message's id
    assert thread.type is discord.ChannelType.public_thread
    assert thread.parent_id == h.channel.id and thread.owner_id == h.emu.bot_user_id
    assert thread.name == "A question" and thread.auto_archive_duration == 60
    assert not thread.archived and not thread.locked
    # THREAD_CREATE with newly_created: discord.py caches it and fires thread_create.
    await h.emu.wait_for(lambda: bool(h.bot.created))
    assert h.bot.created[0].id == thread.id
    guild = h.bot.get_guild(h.guild.id)
    assert guild is not None and guild.get_thread(thread.id) is not None
    assert h.emu.message(anchor.id).flags & discord.MessageFlags.has_thread.flag

    sent = await thread.send("the answer")
    assert sent.channel.id == thread.id
    assert [m.content for m in h.emu.channel_messages(thread.id)] == ["the answer"]
    assert [m.content for m in h.emu.channel_messages(h.channel.id)] == ["a question"]
    assert h.emu.threads_of(h.channel.id)[0].name == "A question"
    fetched = await h.bot.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.message_count == 1


async def test_one_thread_per_message_and_names_checked(h: Harness) -> None:
    anchor = await h.text_channel().send("a question")
    with pytest.raises(discord.HTTPException) as too_long:
        await anchor.create_thread(name="x" * 101)
    assert too_long.value.code == 50035
    await anchor.create_thread(name="first")
    with pytest.raises(discord.HTTPException) as again:
        await anchor.create_thread(name="second")
    assert again.value.code == 160004
    assert [t.name for t in h.emu.threads_of(h.channel.id)] == ["first"]


async def test_a_thread_without_a_message_leaves_a_system_message(h: Harness) -> None:
    thread = await h.text_channel().create_thread(
        name="notes", type=discord.ChannelType.public_thread
    )
    assert thread.type is discord.ChannelType.public_thread and thread.parent_id == h.channel.id
    (notice,) = h.emu.channel_messages(h.channel.id)
    assert notice.type == 18 and notice.content == "notes"
    assert notice.reference is not None and int(notice.reference["channel_id"]) == thread.id
    private = await h.text_channel().create_thread(name="quiet")  # Discord's default type
    assert private.type is discord.ChannelType.private_thread


async def test_without_create_threads_the_bot_is_refused(h: Harness) -> None:
    h.emu.set_bot_permissions(h.channel.id, DEFAULT_PERMISSIONS & ~Permission.CREATE_PUBLIC_THREADS)
    anchor = await h.text_channel().send("a question")
    with pytest.raises(discord.Forbidden):
        await anchor.create_thread(name="nope")
    assert h.emu.threads_of(h.channel.id) == []


async def test_archiving_and_a_post_that_unarchives(h: Harness) -> None:
    anchor = await h.text_channel().send("a question")
    thread = await anchor.create_thread(name="q")
    guild = h.bot.get_guild(h.guild.id)
    assert guild is not None
    await h.emu.wait_for(lambda: guild.get_thread(thread.id) is not None)

    await thread.edit(archived=True)
    await h.emu.wait_for(lambda: guild.get_thread(thread.id) is None)  # dropped when archived
    assert h.emu.thread(thread.id).thread.archived  # type: ignore[union-attr]

    # A member's message in the archived thread unarchives it, and says so first.
    h.bot.events.clear()
    await h.emu.send_user_message(thread.id, h.alice.id, "still there?")
    await h.emu.wait_for(lambda: any(e.startswith("message") for e in h.bot.events))
    assert h.bot.events == ["update archived=False", "message still there?"]
    seen = h.bot.seen_messages[-1]
    assert isinstance(seen.channel, discord.Thread) and seen.channel.owner_id == h.bot.user.id  # type: ignore[union-attr]
    assert not h.emu.thread(thread.id).thread.archived  # type: ignore[union-attr]

    # Discord archives a quiet thread itself; the bot's post unarchives it again.
    h.emu.archive_thread(thread.id)
    await h.emu.wait_for(lambda: guild.get_thread(thread.id) is None)
    await discord.PartialMessageable(state=h.bot._connection, id=thread.id).send("yes")
    history = h.emu.thread(thread.id).thread.archive_history  # type: ignore[union-attr]
    bot_id = h.emu.bot_user_id
    assert history == [(True, bot_id), (False, h.alice.id), (True, None), (False, bot_id)]
    await h.emu.wait_for(lambda: guild.get_thread(thread.id) is not None)


async def test_a_locked_thread_refuses_posts(h: Harness) -> None:
    anchor = await h.text_channel().send("a question")
    thread = await anchor.create_thread(name="q")
    h.emu.archive_thread(thread.id, locked=True)
    with pytest.raises(ApiError):
        await h.emu.send_user_message(thread.id, h.alice.id, "hello?")
    with pytest.raises(discord.HTTPException) as refused:
        await thread.send("hello")
    assert refused.value.code == 50083
    assert h.emu.channel_messages(thread.id) == []


async def test_a_members_thread_is_theirs(h: Harness) -> None:
    question = await h.emu.send_user_message(h.channel.id, h.alice.id, "anyone?")
    made = h.emu.start_member_thread(h.channel.id, h.alice.id, "anyone?", message_id=question.id)
    await h.emu.wait_for(lambda: bool(h.bot.created))
    thread = h.bot.created[0]
    assert thread.id == made.id == question.id and thread.owner_id == h.alice.id
    # The bot may post there, but not archive a thread it neither owns nor manages.
    await thread.send("here")
    with pytest.raises(discord.Forbidden):
        await thread.edit(archived=True)
