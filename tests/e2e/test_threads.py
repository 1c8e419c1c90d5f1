"""Conversations in threads: /ask thread:true, a channel that always answers in threads, the
bot's threads answering without a mention, and each thread a conversation of its own that
uses its channel's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import World, chat_bodies, stored_messages, wait_private_note, world
from tests.emulators.discord_server import (
    BOT_PERMISSIONS,
    Channel,
    InteractionRecord,
    Message,
    Permission,
    User,
)

FOOTER = "\n-# "


def answers_in(w: World, channel_id: int) -> list[Message]:
    """The bot's finished answers in a channel or thread (the footer is written last)."""
    return [
        m
        for m in w.discord.channel_messages(channel_id)
        if m.author_id == w.discord.bot_user_id and FOOTER in m.content
    ]


async def answered_in(w: World, channel_id: int, count: int) -> list[Message]:
    await w.discord.wait_for(lambda: len(answers_in(w, channel_id)) >= count, timeout=10)
    return answers_in(w, channel_id)


async def ask(
    w: World, prompt: str, *, user: User | None = None, **options: Any
) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=(user or w.alice).id, **w.where, options={"prompt": prompt, **options}
    )


async def ask_in_thread(w: World, prompt: str, **options: Any) -> tuple[InteractionRecord, Channel]:
    """/ask thread:true; returns the interaction and the thread, once answered there."""
    rec = await ask(w, prompt, thread=True, **options)
    await w.discord.wait_for(lambda: bool(w.discord.threads_of(w.channel.id)), timeout=10)
    (thread,) = w.discord.threads_of(w.channel.id)
    await answered_in(w, thread.id, 1)
    return rec, thread


def sent_turns(w: World) -> list[tuple[str, str]]:
    """The messages of the latest question sent to the model, system prompt left out."""
    return [
        (m["role"], m["content"])
        for m in chat_bodies(w.ollama)[-1]["messages"]
        if m["role"] != "system"
    ]


async def test_ask_with_thread_opens_one_on_its_anchor_and_answers_there(w: World) -> None:
    w.ollama.set_reply("Threads keep a channel tidy.")
    rec, thread = await ask_in_thread(w, "Why use threads?")
    assert thread.thread is not None
    assert thread.id == rec.original.id  # type: ignore[union-attr]  # opened on the anchor
    assert thread.thread.owner_id == w.discord.bot_user_id
    assert thread.thread.parent_id == w.channel.id and thread.name == "Why use threads?"
    (answer,) = answers_in(w, thread.id)
    assert answer.content.startswith("Threads keep a channel tidy.")
    await rec.wait_done(lambda r: r.original is not None and "Answered in" in r.original.content)
    assert rec.original is not None and rec.original.content == f"🧵 Answered in <#{thread.id}>"
    assert rec.original.components == []  # the Stop button is gone once the answer is over
    # The answer is the thread's conversation; the channel's has nothing.
    stored = await stored_messages(w, f"channel:{thread.id}", 2)
    assert [m["content"] for m in stored] == ["Why use threads?", "Threads keep a channel tidy."]
    assert await w.bot.manager.store.messages(f"channel:{w.channel.id}") == []


async def test_a_follow_up_in_the_bots_thread_needs_no_mention(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.queue_replies("The channel's answer.", "Blue.", "Rayleigh scattering.")
        rec = await ask(w, "A question in the channel")
        await rec.wait_done(lambda r: r.original is not None and FOOTER in r.original.content)
        _, thread = await ask_in_thread(w, "What colour is the sky?")
        await stored_messages(w, f"channel:{thread.id}", 2)

        await w.discord.send_user_message(thread.id, w.bob.id, "why?")  # no mention
        replies = await answered_in(w, thread.id, 2)
        assert replies[-1].content.startswith("Rayleigh scattering.")
        assert sent_turns(w) == [
            ("user", "What colour is the sky?"),
            ("assistant", "Blue."),
            ("user", "why?"),
        ]
        thread_turns = await stored_messages(w, f"channel:{thread.id}", 4)
        assert [m["content"] for m in thread_turns][2:] == ["why?", "Rayleigh scattering."]
        channel_turns = await stored_messages(w, f"channel:{w.channel.id}", 2)
        assert [m["content"] for m in channel_turns] == [
            "A question in the channel",
            "The channel's answer.",
        ]


async def test_a_members_thread_still_needs_a_mention(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.set_reply("Here I am.")
        started = await w.discord.send_user_message(w.channel.id, w.alice.id, "a topic")
        thread = w.discord.start_member_thread(
            w.channel.id, w.alice.id, "alice's topic", message_id=started.id
        )
        await w.discord.send_user_message(thread.id, w.bob.id, "just chatting here")
        await w.discord.send_user_message(
            thread.id, w.bob.id, "are you there?", mentions=[w.discord.bot_user_id]
        )
        (reply,) = await answered_in(w, thread.id, 1)
        assert reply.reference is not None  # a mention is answered as a reply, as in a channel
        assert [r["messages"][-1]["content"] for r in chat_bodies(w.ollama)] == ["are you there?"]
        stored = await stored_messages(w, f"channel:{thread.id}", 2)
        assert stored[0]["content"] == "are you there?"
        assert w.discord.threads_of(w.channel.id) == [thread]  # no thread of the bot's


async def test_a_channel_that_always_answers_in_threads(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        rec = await w.discord.invoke_slash(
            "settings", subcommand="threads", user_id=w.admin.id, **w.where,
            options={"answers": "on"},
        )  # fmt: skip
        assert "every question here gets a thread" in await wait_private_note(rec)
        w.ollama.set_reply("In a thread of its own.")

        asked = await w.discord.send_user_message(
            w.channel.id, w.alice.id, "hello there", mentions=[w.discord.bot_user_id]
        )
        await w.discord.wait_for(lambda: bool(w.discord.threads_of(w.channel.id)), timeout=10)
        (thread,) = w.discord.threads_of(w.channel.id)
        assert thread.id == asked.id and thread.name == "hello there"  # on the member's message
        (answer,) = await answered_in(w, thread.id, 1)
        assert answer.reference is None and answer.content.startswith("In a thread of its own.")
        assert answers_in(w, w.channel.id) == []
        await stored_messages(w, f"channel:{thread.id}", 2)

        # /ask follows the channel's choice, unless asked otherwise or privately.
        await ask(w, "and this one?")
        await w.discord.wait_for(lambda: len(w.discord.threads_of(w.channel.id)) == 2, timeout=10)
        here = await ask(w, "answer here", thread=False)
        private = await ask(w, "just for me", private=True)
        for done in (here, private):
            await done.wait_done(lambda r: r.original is not None and FOOTER in r.original.content)
        assert private.original is not None and private.original.ephemeral
        assert len(w.discord.threads_of(w.channel.id)) == 2

        show = await w.discord.invoke_slash(
            "settings", subcommand="show", user_id=w.admin.id, **w.where
        )
        await show.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
        embed = next(m.embeds[0] for m in [show.original, *show.followups] if m and m.embeds)
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Threads"].startswith("on:")


async def test_a_thread_uses_its_channels_settings(w: World) -> None:
    for subcommand, options in (
        ("model", {"name": "qwen3"}),
        ("system", {"prompt": "You answer like a pirate."}),
    ):
        command = "model" if subcommand == "model" else "settings"
        rec = await w.discord.invoke_slash(
            command, subcommand="set" if command == "model" else subcommand,
            user_id=w.admin.id, **w.where, options=options,
        )  # fmt: skip
        await wait_private_note(rec)
    await ask_in_thread(w, "Ahoy?")
    body = chat_bodies(w.ollama)[-1]
    assert body["model"].startswith("qwen3")
    assert body["messages"][0] == {"role": "system", "content": "You answer like a pirate."}


async def test_an_archived_thread_keeps_its_conversation(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.queue_replies("Forty-two.", "Still forty-two.", "Yes, forty-two.")
        _, thread = await ask_in_thread(w, "What is the answer?")
        await stored_messages(w, f"channel:{thread.id}", 2)
        guild = w.bot.get_guild(w.guild.id)
        assert guild is not None

        w.discord.archive_thread(thread.id)  # quiet for a day: Discord archives it
        await w.discord.wait_for(lambda: guild.get_thread(thread.id) is None)
        await w.discord.send_user_message(thread.id, w.bob.id, "are you sure?")
        await answered_in(w, thread.id, 2)
        assert thread.thread is not None and not thread.thread.archived  # the message reopened it
        assert sent_turns(w)[:2] == [("user", "What is the answer?"), ("assistant", "Forty-two.")]

        # A message may also arrive before discord.py knows the thread again: it is fetched.
        w.discord.archive_thread(thread.id)
        await w.discord.wait_for(lambda: guild.get_thread(thread.id) is None)
        w.discord.threads.set_archived(thread, False, by=w.bob.id)
        await w.discord.wait_for(lambda: guild.get_thread(thread.id) is not None)
        stale = guild.get_thread(thread.id)
        assert stale is not None
        guild._remove_thread(stale)  # as if Discord's THREAD_UPDATE had not come yet
        await w.discord.send_user_message(thread.id, w.bob.id, "really?")
        await answered_in(w, thread.id, 3)
        assert [m["content"] for m in await stored_messages(w, f"channel:{thread.id}", 6)][4:] == [
            "really?",
            "Yes, forty-two.",
        ]


async def test_thread_names_never_ping(w: World) -> None:
    role = f"<@&{w.guild.id}>"
    prompt = f"<@{w.bob.id}> @everyone {role} @here   is this\nsafe?"
    _, thread = await ask_in_thread(w, prompt)
    assert thread.name == "is this safe?"
    long_rec = await ask(w, "word " * 60 + "@everyone", thread=True)
    await w.discord.wait_for(lambda: len(w.discord.threads_of(w.channel.id)) == 2, timeout=10)
    long = w.discord.threads_of(w.channel.id)[1]
    assert len(long.name) <= 100 and long.name.endswith("…") and "@" not in long.name
    await answered_in(w, long.id, 1)
    assert long_rec.original is not None
    for message in [long_rec.original, *w.discord.channel_messages(thread.id)]:
        assert not message.pinged


async def test_a_private_answer_never_goes_to_a_thread(w: World) -> None:
    rec = await ask(w, "secret question", private=True, thread=True)
    note = await wait_private_note(rec)
    assert "private answer can't go to a thread" in note
    assert w.discord.threads_of(w.channel.id) == []
    assert chat_bodies(w.ollama) == []


async def test_ask_inside_a_thread_continues_its_conversation(w: World) -> None:
    # Without MENTION_CHAT the bot reads no messages: /ask in the thread is the way on.
    w.ollama.queue_replies("Blue.", "Because of Rayleigh scattering.")
    _, thread = await ask_in_thread(w, "What colour is the sky?")
    await stored_messages(w, f"channel:{thread.id}", 2)
    # A change to the channel's settings reaches its thread at the next question.
    prompt = {"prompt": "Answer in one sentence."}
    await wait_private_note(
        await w.discord.invoke_slash(
            "settings", subcommand="system", user_id=w.admin.id, **w.where, options=prompt
        )
    )
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.bob.id, channel_id=thread.id, guild_id=w.guild.id,
        options={"prompt": "why?", "thread": True},
    )  # fmt: skip
    await rec.wait_done(lambda r: r.original is not None and FOOTER in r.original.content)
    assert rec.original is not None and rec.original.channel_id == thread.id
    assert rec.original.content.startswith("Because of Rayleigh scattering.")
    assert sent_turns(w) == [
        ("user", "What colour is the sky?"),
        ("assistant", "Blue."),
        ("user", "why?"),
    ]
    assert chat_bodies(w.ollama)[-1]["messages"][0]["content"] == "Answer in one sentence."
    assert len(w.discord.threads_of(w.channel.id)) == 1  # no thread in a thread
    assert await w.bot.manager.store.messages(f"channel:{w.channel.id}") == []


async def test_the_anchors_stop_button_stops_the_answer_in_the_thread(w: World) -> None:
    answer = " ".join(f"slow{i}" for i in range(200))
    w.ollama.set_reply(answer)
    w.ollama.tokens_per_second = 20  # ten seconds if nobody stops it
    rec = await ask(w, "Talk for a while.", thread=True)
    await w.discord.wait_for(lambda: bool(w.discord.threads_of(w.channel.id)), timeout=10)
    (thread,) = w.discord.threads_of(w.channel.id)

    def streaming() -> bool:
        shown = [m for m in w.discord.channel_messages(thread.id) if "slow2" in m.content]
        return bool(shown) and rec.original is not None and bool(rec.original.components)

    await w.discord.wait_for(streaming, timeout=10)
    assert rec.original is not None
    pressed = await w.discord.press_button(rec.original.id, 0, user_id=w.alice.id)
    await pressed.wait_done(lambda r: r.acked)
    (stopped,) = await answered_in(w, thread.id, 1)
    assert stopped.content.rstrip().endswith("stopped")
    assert len(stopped.content) < len(answer) // 2
    await rec.wait_done(lambda r: r.original is not None and not r.original.components)


async def test_without_permission_to_open_threads_the_asker_is_told(w: World) -> None:
    w.discord.set_bot_permissions(w.channel.id, BOT_PERMISSIONS & ~Permission.CREATE_PUBLIC_THREADS)
    rec = await ask(w, "In a thread, please", thread=True)
    note = await wait_private_note(rec)
    assert "I need the Create Public Threads" in note
    assert w.discord.threads_of(w.channel.id) == []
    assert chat_bodies(w.ollama) == []
    # The anchor that could not get its thread is gone, so nothing public is left behind.
    assert rec.original is None or rec.original.deleted or rec.original.ephemeral
