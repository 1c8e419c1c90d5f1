"""The bot as one of several processes on one PostgreSQL: a channel's question waits, and
says so, while another process answers in the same conversation, then sees that turn."""

from __future__ import annotations

import asyncio

import pytest

from bot import OllamaRequestManager
from bot.core.events import QueryEvent, StartedEvent
from tests.e2e.conftest import e2e_settings, running_bot
from tests.e2e.test_ask import finished, pages_without_footer
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator

WAITING = "⏳ Waiting for an answer another bot process is writing in this conversation…"


@pytest.mark.postgresql_only
async def test_a_question_waits_for_another_process_answering_in_its_channel(
    postgres_url: str,
) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild("Test Guild")
        channel = discord_emu.add_channel(guild.id, "general")
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        settings = e2e_settings(ollama, postgres_url, guild)
        # Another process on the same database: the CLI, the HTTP API or another shard.
        other = OllamaRequestManager(
            host=ollama.url, default_model="llama3.2", database_url=postgres_url
        )
        await other.start()
        try:
            async with running_bot(discord_emu, settings):
                started, go_on = asyncio.Event(), asyncio.Event()

                async def hold(event: QueryEvent) -> None:
                    if isinstance(event, StartedEvent):  # the conversation is taken
                        started.set()
                        await go_on.wait()

                elsewhere = asyncio.create_task(
                    other.ask(
                        prompt="first, elsewhere", session_id=f"channel:{channel.id}", on_event=hold
                    )
                )
                await asyncio.wait_for(started.wait(), 10)
                rec = await discord_emu.invoke_slash(
                    "ask",
                    user_id=alice.id,
                    channel_id=channel.id,
                    guild_id=guild.id,
                    options={"prompt": "second, on Discord"},
                )
                await rec.wait_done(
                    lambda r: r.original is not None and r.original.content.startswith(WAITING)
                )
                go_on.set()
                assert (await asyncio.wait_for(elsewhere, 10)).content == "Echo: first, elsewhere"
                messages = await finished(rec)
        finally:
            await other.close()
    assert pages_without_footer(messages) == ["Echo: second, on Discord"]
    chats = [r.json or {} for r in ollama.requests if r.path == "/api/chat"]
    assert [m["content"] for m in chats[-1]["messages"]][-3:] == [
        "first, elsewhere",
        "Echo: first, elsewhere",
        "second, on Discord",
    ]
    assert ollama.max_active_seen == 1
