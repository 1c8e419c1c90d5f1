"""The bot against failing peers: Ollama down, missing models, broken streams, 429 storms,
restarts, and the discord.py internals it patches."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import discord.gateway
import discord.http
import pytest
import yarl

from bot.discord_app.connection import point_discord_at
from tests.e2e.conftest import World, e2e_settings, running_bot, stored_messages, world
from tests.e2e.test_ask import (
    DISCORD_LIMIT,
    ask,
    chat_requests,
    finished,
    footer_of,
    pages_without_footer,
    prose,
    reply_messages,
)
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord
from tests.emulators.ollama_server import OllamaEmulator


async def settled_with(rec: InteractionRecord, text: str, timeout: float = 10.0) -> str:  # noqa: ASYNC109
    """The reply's last message once it shows ``text`` (a final notice) and nothing moves."""
    await rec.wait_done(
        lambda r: bool(reply_messages(r)) and text in reply_messages(r)[-1].content,
        timeout=timeout,
    )
    await rec.wait_quiet()
    return reply_messages(rec)[-1].content


async def stored(w: World) -> list[tuple[str, str]]:
    messages = await w.bot.manager.store.messages(f"channel:{w.channel.id}")
    return [(m["role"], m["content"]) for m in messages]


async def test_ollama_down_is_reported_with_its_host_and_nothing_is_stored(w: World) -> None:
    w.ollama.refuse_connections()
    rec = await ask(w, "Anyone there?")
    content = await settled_with(rec, "Cannot reach the model server")

    assert "⚠️" in content
    assert w.ollama.url in content
    assert rec.original is not None and rec.original.components == []
    assert await stored(w) == []

    await w.ollama.accept_connections()
    w.ollama.set_reply("Back online.")
    messages = await finished(await ask(w, "And now?"))
    assert pages_without_footer(messages) == ["Back online."]
    # The failed question left nothing behind to be sent as history.
    turn = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert [(m["role"], m["content"]) for m in turn] == [
        ("user", "And now?"),
        ("assistant", "Back online."),
    ]
    assert [m["content"] for m in chat_requests(w)[-1]["messages"] if m["role"] != "system"] == [
        "And now?"
    ]


async def test_database_failing_before_the_answer_is_one_ephemeral_error(w: World) -> None:
    # /ask acknowledges while it reads the conversation's settings; when that read fails
    # the error must still go out after the acknowledgement, never as a second one.
    channel = w.discord.add_channel(w.guild.id, "configured")
    # A channel with settings: its question has to read them (a new one reads nothing).
    await w.bot.manager.update_session_settings(f"channel:{channel.id}", system_prompt="Hi.")
    engine = w.bot.manager.services.engine
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE sessions RENAME TO sessions_away")
    try:
        rec = await ask(w, "Are you there?", channel=channel)
        await rec.wait_done(lambda r: bool(r.followups), timeout=10)
        await rec.wait_quiet()
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE sessions_away RENAME TO sessions")

    assert rec.errors == []
    assert rec.ack_type == 5  # deferred
    [notice] = rec.followups
    assert notice.ephemeral
    assert "database is not answering" in notice.content
    assert rec.original is None or rec.original.deleted
    assert chat_requests(w) == []


async def test_a_failed_acknowledgement_cancels_the_answer(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    # /ask starts answering while it acknowledges; if Discord refuses the acknowledgement
    # (here: every one is too late), nobody will see the answer, so none is made or kept.
    w.ollama.set_reply(" ".join(["word"] * 200))
    w.ollama.tokens_per_second = 50
    w.discord.rest.config.ack_deadline = 0.0
    try:
        with caplog.at_level(logging.WARNING):
            rec = await ask(w, "Too late?")
            # Only the acknowledgement: telling the user privately would get 10062 too.
            await rec.wait_done(lambda r: len(r.errors) == 1, timeout=10)
            assert await w.bot.manager.wait_idle(5)
            # The error handler runs after Discord's refusal: its line comes a moment later.
            await w.discord.wait_for(lambda: expired_logged(caplog), timeout=10)
    finally:
        w.discord.rest.config.ack_deadline = 3.0

    assert rec.errors == [{"message": "Unknown interaction", "code": 10062}]
    assert rec.original is None and rec.followups == []
    assert await stored(w) == []

    w.ollama.set_reply("Still here.")
    w.ollama.tokens_per_second = None
    messages = await finished(await ask(w, "And now?"))
    assert pages_without_footer(messages) == ["Still here."]


async def test_missing_model_falls_back_to_the_configured_model(tmp_path: Path) -> None:
    async with world(tmp_path, FALLBACK_MODELS="qwen3") as w:
        w.ollama.set_reply("The fallback answers.")
        messages = await finished(await ask(w, "Hello?", model="no-such-model"))

        assert [r["model"] for r in chat_requests(w)] == ["no-such-model", "qwen3"]
        assert pages_without_footer(messages) == ["The fallback answers."]
        footer = footer_of(messages)
        assert footer.startswith("-# qwen3 · ")
        assert "fallback for no-such-model" in footer


async def test_missing_model_without_fallback_names_the_model_and_pull(w: World) -> None:
    rec = await ask(w, "Hello?", model="no-such-model")
    content = await settled_with(rec, "not available")

    assert "`no-such-model`" in content
    assert "/model pull" in content
    assert await stored(w) == []


async def test_stall_mid_stream_keeps_the_partial_text_and_warns(tmp_path: Path) -> None:
    async with world(tmp_path, STREAM_IDLE_TIMEOUT="0.5") as w:
        w.ollama.set_reply(" ".join(f"part{i}" for i in range(20)))
        w.ollama.stall_mid_stream(after_tokens=5, seconds=3)
        rec = await ask(w, "Go on.")
        content = await settled_with(rec, "⚠️")

        assert content.startswith("part0 part1 part2 part3 part4")
        assert "part5" not in content
        assert "stopped sending" in content
        assert rec.original is not None and rec.original.components == []
        assert await stored(w) == []


async def test_drop_mid_stream_keeps_the_partial_text_and_warns(w: World) -> None:
    w.ollama.set_reply(" ".join(f"part{i}" for i in range(20)))
    w.ollama.drop_mid_stream(after_tokens=5)
    rec = await ask(w, "Go on.")
    content = await settled_with(rec, "⚠️")

    assert content.startswith("part0 part1 part2 part3 part4")
    assert "part5" not in content
    assert "connection to the model server was lost" in content
    # A restart would repeat text the user already saw: one attempt only.
    assert len(chat_requests(w)) == 1
    assert await stored(w) == []


async def test_429_storm_still_delivers_everything_exactly_once(w: World) -> None:
    answer = prose(14)
    w.ollama.set_reply(answer)
    w.ollama.tokens_per_second = 800  # streams for a couple of seconds: the storm hits mid-answer
    # Bursts at the start, on the first follow-up and later on. The middle one outlasts
    # discord.py's 5 tries per request, so the reply's own retry has to carry the write.
    w.discord.force_429(4, retry_after=0.05, route_contains="/webhooks/")
    rec = await ask(w, "A long one, please.")
    await rec.wait_done(lambda r: len(r.followups) >= 1)
    w.discord.force_429(7, retry_after=0.05, route_contains="/webhooks/")
    await rec.wait_done(lambda r: len(r.followups) >= 2, timeout=10)
    w.discord.force_429(4, retry_after=0.05, route_contains="/webhooks/")
    messages = await finished(rec, timeout=20)
    await rec.wait_quiet()

    assert w.discord.count_429() == 15
    assert all(len(m.content) <= DISCORD_LIMIT for m in messages)
    pages = pages_without_footer(messages)
    assert len(set(pages)) == len(pages), "a page was sent twice"
    assert "".join(pages) == answer
    posted = [c for c in w.discord.calls if c.method == "POST" and c.status == 200]
    followup_posts = [c for c in posted if "/webhooks/" in c.path]
    assert len(followup_posts) == len(rec.followups)


@asynccontextmanager
async def emulators() -> AsyncIterator[tuple[DiscordEmulator, OllamaEmulator]]:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        yield discord_emu, ollama


async def test_restart_keeps_the_session_and_does_not_resync_commands(database_url: str) -> None:
    async with emulators() as (discord_emu, ollama):
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        settings = e2e_settings(ollama, database_url, guild)
        where = {"channel_id": channel.id, "guild_id": guild.id, "user_id": alice.id}
        ollama.queue_replies("Noted: blue.", "You said blue.")

        async with running_bot(discord_emu, settings):
            rec = await discord_emu.invoke_slash(
                "ask", **where, options={"prompt": "My favourite colour is blue."}
            )
            await finished(rec)
        assert len(discord_emu.command_syncs) == 1

        async with running_bot(discord_emu, settings):
            rec = await discord_emu.invoke_slash(
                "ask", **where, options={"prompt": "What is my favourite colour?"}
            )
            messages = await finished(rec)

        assert pages_without_footer(messages) == ["You said blue."]
        assert discord_emu.identifies == 2  # really two runs of the bot
        assert len(discord_emu.command_syncs) == 1, "unchanged commands were synced again"
        second = [r.json or {} for r in ollama.requests if r.path == "/api/chat"][1]
        history = [(m["role"], m["content"]) for m in second["messages"] if m["role"] != "system"]
        assert history == [
            ("user", "My favourite colour is blue."),
            ("assistant", "Noted: blue."),
            ("user", "What is my favourite colour?"),
        ]


def test_discord_internals_we_patch_are_where_we_expect() -> None:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    assert isinstance(base, str)
    assert isinstance(gateway, yarl.URL)
    try:
        point_discord_at("http://127.0.0.1:9/api/v10", "ws://127.0.0.1:9/gateway")
        assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
        patched = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        assert patched == yarl.URL("ws://127.0.0.1:9/gateway")
        # A Route built now must use the new base, or REST calls would still go to Discord.
        route = discord.http.Route("GET", "/users/@me")
        assert route.url == "http://127.0.0.1:9/api/v10/users/@me"
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def expired_logged(caplog: pytest.LogCaptureFixture) -> bool:
    said = [r.getMessage() for r in caplog.records]
    return any("/ask: the interaction expired before the bot answered" in m for m in said)
