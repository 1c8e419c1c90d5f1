"""MENTION_CHAT: mentioning the bot, or replying to one of its answers, works like /ask."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.e2e.conftest import World, stored_messages, world
from tests.emulators.discord_server import Message


def bot_messages(w: World) -> list[Message]:
    return [
        m for m in w.discord.channel_messages(w.channel.id) if m.author_id == w.discord.bot_user_id
    ]


def chat_requests(w: World) -> list[dict]:
    return [r.json or {} for r in w.ollama.requests if r.path == "/api/chat"]


async def answered(w: World, count: int) -> list[Message]:
    await w.discord.wait_for(
        lambda: len([m for m in bot_messages(w) if "tokens" in m.content]) >= count, timeout=10
    )
    return bot_messages(w)


async def test_a_mention_is_answered_in_the_channel_conversation(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.set_reply("Hello <@everyone>, I am here. @everyone")
        asked = await w.discord.send_user_message(
            w.channel.id, w.alice.id, "are you there?", mentions=[w.discord.bot_user_id]
        )
        (reply,) = await answered(w, 1)
        assert reply.content.startswith("Hello <@everyone>, I am here.")
        assert reply.reference is not None and int(reply.reference["message_id"]) == asked.id
        assert reply.allowed_mentions is not None and reply.allowed_mentions["parse"] == []
        assert not reply.pinged
        # The bot's mention is not part of the question the model sees.
        assert chat_requests(w)[-1]["messages"][-1]["content"] == "are you there?"
        stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
        assert stored[0]["content"] == "are you there?"


async def test_a_reply_to_an_answer_continues_the_conversation(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.queue_replies("The sky is blue.", "Because of Rayleigh scattering.")
        await w.discord.send_user_message(
            w.channel.id, w.alice.id, "what colour is the sky?", mentions=[w.discord.bot_user_id]
        )
        (first,) = await answered(w, 1)
        await stored_messages(w, f"channel:{w.channel.id}", 2)
        await w.discord.send_user_message(
            w.channel.id, w.bob.id, "why?", reference_message_id=first.id
        )
        replies = await answered(w, 2)
        assert replies[-1].content.startswith("Because of Rayleigh scattering.")
        sent = [m["content"] for m in chat_requests(w)[-1]["messages"] if m["role"] != "system"]
        assert sent == ["what colour is the sky?", "The sky is blue.", "why?"]


async def test_other_messages_are_ignored(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        await w.discord.send_user_message(w.channel.id, w.alice.id, "just chatting")
        other = await w.discord.send_user_message(w.channel.id, w.bob.id, "me too")
        await w.discord.send_user_message(
            w.channel.id, w.alice.id, "replying to bob", reference_message_id=other.id
        )
        # A mention afterwards is answered, so the ones before were seen and skipped.
        await w.discord.send_user_message(
            w.channel.id, w.alice.id, "now you", mentions=[w.discord.bot_user_id]
        )
        await answered(w, 1)
        prompts = [r["messages"][-1]["content"] for r in chat_requests(w)]
        assert prompts == ["now you"]


async def test_mentions_are_ignored_unless_enabled(w: World) -> None:
    await w.discord.send_user_message(
        w.channel.id, w.alice.id, "hello?", mentions=[w.discord.bot_user_id]
    )
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "are mentions on?"}
    )
    await rec.wait_done(lambda r: r.original is not None and "tokens" in r.original.content)
    assert [r["messages"][-1]["content"] for r in chat_requests(w)] == ["are mentions on?"]


async def test_mentions_are_questions_never_prefix_commands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The bot has no prefix commands: a mention that starts like one ("@bot help") must not
    # go through command parsing (which logged an ERROR CommandNotFound per mention).
    caplog.set_level(logging.DEBUG)
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.set_reply("Here is some help.")
        bot_mention = f"<@{w.discord.bot_user_id}>"
        for i, text in enumerate(("help me", "ping", "stats please")):
            await w.discord.send_user_message(
                w.channel.id, w.alice.id, f"{bot_mention} {text}", mentions=[w.discord.bot_user_id]
            )
            await answered(w, i + 1)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [], [r.getMessage() for r in problems]
    assert not any("CommandNotFound" in r.getMessage() for r in caplog.records)


async def test_a_burst_of_mentions_stays_within_discords_global_limit(tmp_path: Path) -> None:
    # Replies to mentions go through channel routes, which share the bot's 50 requests per
    # second (interaction replies don't); a global 429 holds every request of the bot.
    async with world(tmp_path, MENTION_CHAT="true") as w:
        w.ollama.set_reply("A short answer for everyone.")
        channels = [w.discord.add_channel(w.guild.id, f"burst-{i}") for i in range(40)]
        for channel in channels:
            await w.discord.send_user_message(
                channel.id, w.alice.id, "hello?", mentions=[w.discord.bot_user_id]
            )

        def answered_everywhere() -> bool:
            return all(
                any(
                    m.author_id == w.discord.bot_user_id and "-# " in m.content
                    for m in w.discord.channel_messages(channel.id)
                )
                for channel in channels
            )

        await w.discord.wait_for(answered_everywhere, timeout=30)
        limited = [(c.method, c.path, c.response) for c in w.discord.calls if c.status == 429]
        assert limited == []
        writes = [c for c in w.discord.calls if c.path.startswith("/channels/")]
        assert len(writes) >= 80  # a reply and its final edit in each channel
