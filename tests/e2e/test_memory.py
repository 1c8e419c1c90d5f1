"""Memory end to end: conversations searched by meaning after a restart, the running summary
of what fell out of the history window, members' notes (/memory, the remember tool, the
server's opt-in with /settings memory, /memory purge) and the privacy rule between members;
the real bot against both emulators.

The Ollama emulator embeds a text as a bag of its words (stop words left out): "What was
the codename of the release?" shares two of the four words of "Our release codename is
Marmalade Falcon.", a cosine of about 2/sqrt(2*4) = 0.71, over the turn index's 0.5 floor.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bot.core.memory.notes import NOTES_OFF
from bot.core.memory.summary import PROMPT as SUMMARY_PROMPT
from bot.core.planning import NOTES_HEADING, SUMMARY_HEADING
from bot.discord_app.app import OllacordBot
from bot.discord_app.routing import channel_key
from tests.e2e.conftest import (
    World,
    e2e_settings,
    open_command_to_everyone,
    running_bot,
    stored_messages,
    wait_private_note,
    world,
)
from tests.e2e.test_ask import ask, finished
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, DiscordEmulator, User
from tests.emulators.ollama_models import RecordedRequest
from tests.emulators.ollama_server import OllamaEmulator
from tests.support.databases import count_rows

EARLY = "Our release codename is Marmalade Falcon."
LATER = ["Lunch today is pizza with extra olives.", "The printer on floor two is broken again."]
CODENAME_QUERY = "What was the codename of the release?"
SUMMARY = "Alice's cat is called Pixel. Alice lives in Lyon."
SUMMARY_MARKER = SUMMARY_PROMPT.splitlines()[0]  # the fold's instructions open with it
PYTHON = "Prefers Python to Java"
RUST = "Is learning Rust"


# helpers ------------------------------------------------------------------------------------
def chats(ollama: OllamaEmulator, since: int = 0) -> list[RecordedRequest]:
    return [r for r in ollama.requests[since:] if r.path == "/api/chat"]


def rows(database: str | Path, table: str) -> int:
    """Rows of a table, in the database at a URL or in a SQLite file."""
    url = database if isinstance(database, str) else f"sqlite+aiosqlite:///{database}"
    return count_rows(url, table)


def database(w: World) -> str:
    return w.settings.database_url


async def memory(w: World, subcommand: str, user: User, **options: Any) -> str:
    rec = await w.discord.invoke_slash(
        "memory", subcommand=subcommand, user_id=user.id, **w.where, options=options or None
    )
    return await wait_private_note(rec)


async def member_notes_switch(w: World, value: str, *, user: User | None = None) -> str:
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="memory",
        user_id=(user or w.admin).id,
        **w.where,
        options={"notes": value},
        permissions=None if user is None else DEFAULT_PERMISSIONS,
    )
    return await wait_private_note(rec)


async def asked(w: World, user: User, prompt: str) -> RecordedRequest:
    """Ask and wait for the answer; the (last) chat request it made."""
    before = len(w.ollama.requests)
    await finished(await ask(w, prompt, user=user))
    return chats(w.ollama, before)[-1]


async def remember(w: World, user: User, note: str) -> str:
    """The model calls remember(note) for ``user``; the tool result it got back."""
    w.ollama.script_tools([[("remember", {"note": note})]], final="{tool:remember}")
    try:
        before = len(w.ollama.requests)
        await finished(await ask(w, f"Please remember: {note}.", user=user))
    finally:
        w.ollama.clear_tool_scripts()
    first, *rest = chats(w.ollama, before)
    assert "remember" in first.tool_names
    [result] = this_turns_tool_messages(rest[-1])
    assert result["tool_name"] == "remember"
    return str(result["content"])


def this_turns_tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    """The tool results of the question being answered (a shared conversation's history
    holds earlier questions' too)."""
    messages = request.messages
    last_question = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    return [m for m in messages[last_question:] if m.get("role") == "tool"]


async def stored_turns(bot: OllacordBot, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's messages once ``count`` are stored (the last answer is shown before
    its turn is written)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        messages = [dict(m) for m in await bot.manager.store.messages(session_id)]
        if len(messages) >= count or loop.time() > deadline:
            return messages
        await asyncio.sleep(0.02)


def system_prompt(request: RecordedRequest) -> str:
    system = [m["content"] for m in request.messages if m.get("role") == "system"]
    return "\n".join(system)


async def summary_of(w: World, session_id: str) -> str | None:
    """The conversation's running summary once it is written (it is made in the background,
    after the turn that pushed messages out of the window is stored)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        summary = (await w.bot.manager.get_session_settings(session_id)).summary
        if summary is not None or loop.time() > deadline:
            return summary
        await asyncio.sleep(0.02)


async def settings_show(w: World) -> dict[str, str]:
    rec = await w.discord.invoke_slash("settings", subcommand="show", user_id=w.admin.id, **w.where)
    await rec.wait_done(lambda r: r.original is not None and bool(r.original.embeds))
    assert rec.original is not None
    [embed] = rec.original.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


# conversations searched by meaning ----------------------------------------------------------
async def test_a_conversation_is_searched_by_meaning_after_a_restart(database_url: str) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id, permissions=DEFAULT_PERMISSIONS)
        url = database_url
        where = {"channel_id": channel.id, "guild_id": guild.id, "user_id": alice.id}
        session = channel_key(channel.id)
        ollama.set_reply("Noted.")

        # The first run cannot embed: its turns are stored without vectors.
        ollama.fail_next(10_000, paths=("/api/embed",))
        async with running_bot(discord_emu, e2e_settings(ollama, url, guild)) as bot:
            for prompt in [EARLY, *LATER]:
                rec = await discord_emu.invoke_slash("ask", **where, options={"prompt": prompt})
                await finished(rec)
            stored = await stored_turns(bot, session, 6)
            assert [m["content"] for m in stored if m["role"] == "user"] == [EARLY, *LATER]
        assert rows(url, "message_embeddings") == 0

        ollama.clear_faults()
        async with running_bot(discord_emu, e2e_settings(ollama, url, guild)) as bot:
            assert bot.manager.memory is not None
            await bot.manager.memory.idle()  # the catch-up at start
            assert rows(url, "message_embeddings") == 6  # 3 questions, 3 answers

            ollama.script_tools(
                [[("search_conversation", {"query": CODENAME_QUERY})]],
                final="{tool:search_conversation}",
            )
            before = len(ollama.requests)
            rec = await discord_emu.invoke_slash(
                "ask", **where, options={"prompt": "Remind me of the release's codename."}
            )
            await finished(rec)
            [result] = chats(ollama, before)[-1].tool_messages
            found = result["content"]
            assert found.startswith(
                f"Messages of this conversation about {CODENAME_QUERY!r}, closest in meaning"
            ), found
            assert "user (" in found and EARLY in found
            assert not any(text in found for text in LATER)


# the running summary ------------------------------------------------------------------------
async def test_an_early_fact_is_known_through_the_running_summary(tmp_path: Path) -> None:
    async with world(tmp_path, MAX_HISTORY_MESSAGES="4") as w:

        def model(body: dict[str, Any]) -> str:
            if SUMMARY_MARKER in json.dumps(body):
                return SUMMARY
            if any(SUMMARY in str(m.get("content")) for m in body.get("messages") or []):
                return "Your cat is called Pixel."
            return "Noted."

        w.ollama.set_reply(model)
        session = channel_key(w.channel.id)
        turns = ["My cat is called Pixel.", "I live in Lyon.", "I like green tea."]
        for prompt in turns:
            await finished(await ask(w, prompt))
        # The third turn pushed the first two out of the 4-message window: they were folded.
        assert await summary_of(w, session) == SUMMARY
        [fold] = [r for r in chats(w.ollama) if SUMMARY_MARKER in json.dumps(r.json)]
        assert turns[0] in json.dumps(fold.json) and turns[1] in json.dumps(fold.json)
        assert turns[2] not in json.dumps(fold.json)  # still in the window

        question = await asked(w, w.alice, "What is my cat called?")
        assert question.messages[0] == {
            "role": "system",
            "content": f"{SUMMARY_HEADING}\n{SUMMARY}",
        }
        assert not any("Pixel" in m["content"] for m in question.messages[1:])  # fell out
        assert [m["content"] for m in question.messages[1:]] == [
            turns[2],
            "Noted.",
            "What is my cat called?",
        ]
        assert (await stored_messages(w, session, 8))[-1]["content"] == "Your cat is called Pixel."

        assert (await settings_show(w))["Running summary"] == SUMMARY
        rec = await w.discord.invoke_slash("reset", user_id=w.admin.id, **w.where)
        assert (await wait_private_note(rec)).startswith("🧹 Forgot this channel's conversation")
        assert (await w.bot.manager.get_session_settings(session)).summary is None
        assert (await settings_show(w))["Running summary"].startswith("none yet")
        question = await asked(w, w.alice, "What is my cat called?")
        assert system_prompt(question) == ""


# members' notes -----------------------------------------------------------------------------
async def test_members_see_and_forget_only_their_own_notes(w: World) -> None:
    switched = await member_notes_switch(w, "on")
    assert switched.startswith("Saved. Members' notes are on in this server")
    assert await remember(w, w.alice, PYTHON) == f"Remembered for this member: {PYTHON}"
    assert await remember(w, w.bob, RUST) == f"Remembered for this member: {RUST}"

    alices = await memory(w, "show", w.alice)
    assert f"**1.** {PYTHON}" in alices and RUST not in alices
    bobs = await memory(w, "show", w.bob)
    assert f"**1.** {RUST}" in bobs and PYTHON not in bobs

    # Each member's questions carry their own notes, after the system prompt.
    notes = f"{NOTES_HEADING}\n- {PYTHON}"
    assert system_prompt(await asked(w, w.alice, "Which language should I use?")) == notes
    assert "Python" not in system_prompt(await asked(w, w.bob, "Which language should I use?"))

    # Completing /memory forget's note offers each member their own notes only.
    for member, own in ((w.alice, PYTHON), (w.bob, RUST)):
        rec = await w.discord.invoke_autocomplete(
            "memory", subcommand="forget", user_id=member.id, **w.where, focused="note", value=""
        )
        await rec.wait_done(lambda r: r.autocomplete_choices is not None)
        assert rec.autocomplete_choices == [{"name": f"1. {own}", "value": 1}]

    # Bob's numbers are his own notes': his note 1 is his, and "all" is all of his.
    assert await memory(w, "forget", w.bob, note=1) == f"🗑️ Forgot note 1: “{RUST}”."
    refused = await memory(w, "forget", w.bob, note=1)
    assert refused.startswith("You have no note 1 here (you have 0)")
    assert await memory(w, "forget", w.bob) == "You have no notes here: there is nothing to forget."
    assert f"**1.** {PYTHON}" in await memory(w, "show", w.alice)
    assert rows(database(w), "member_notes") == 1

    assert await memory(w, "forget", w.alice) == "🗑️ Forgot your 1 notes here."
    assert (await memory(w, "show", w.alice)).startswith("🧠 The bot has no notes about you here.")
    assert rows(database(w), "member_notes") == 0
    assert system_prompt(await asked(w, w.alice, "Which language should I use?")) == ""


async def test_remember_is_refused_where_the_server_has_not_opted_in(w: World) -> None:
    # Not offered by default...
    request = await asked(w, w.alice, "hello")
    assert request.tool_names == ["calculator", "get_current_time", "search_conversation"]
    # ...and refused by the tool itself when a channel's admin lists it anyway.
    rec = await w.discord.invoke_slash(
        "settings", subcommand="tools", user_id=w.admin.id, **w.where, options={"names": "remember"}
    )
    await wait_private_note(rec)
    assert await remember(w, w.alice, PYTHON) == f"Error: {NOTES_OFF}"
    assert rows(database(w), "member_notes") == 0
    shown = await memory(w, "show", w.alice)
    assert shown.startswith("🧠 The bot has no notes about you here. Members' notes are off here")
    assert (await settings_show(w))["Members' notes"] == "off, server-wide (`/settings memory`)"


async def test_admins_turn_notes_off_and_purge_them(w: World) -> None:
    await member_notes_switch(w, "on")
    await remember(w, w.alice, PYTHON)
    await remember(w, w.bob, RUST)
    assert (await settings_show(w))["Members' notes"] == "on, server-wide (`/settings memory`)"

    switched = await member_notes_switch(w, "off")
    assert switched.startswith("Saved. Members' notes are off in this server")
    request = await asked(w, w.alice, "Which language should I use?")
    assert "remember" not in request.tool_names
    assert system_prompt(request) == ""  # kept, but no longer used
    kept = await memory(w, "show", w.alice)
    assert f"**1.** {PYTHON}" in kept and "kept, unused" in kept

    purged = await memory(w, "purge", w.admin)
    assert purged == "🗑️ Deleted 2 notes of this server's members. Members' notes are off here."
    assert rows(database(w), "member_notes") == 0
    for member in (w.alice, w.bob):
        assert (await memory(w, "show", member)).startswith("🧠 The bot has no notes about you")


async def test_a_member_is_refused_memory_purge_and_settings_memory(w: World) -> None:
    await member_notes_switch(w, "on")
    await remember(w, w.alice, PYTHON)

    rec = await w.discord.invoke_slash(
        "memory", subcommand="purge", user_id=w.bob.id, **w.where, permissions=DEFAULT_PERMISSIONS
    )
    assert "Manage Server" in await wait_private_note(rec)
    assert rows(database(w), "member_notes") == 1

    open_command_to_everyone(w.discord, "settings")
    assert "Manage Server" in await member_notes_switch(w, "off", user=w.bob)
    guild = await w.bot.manager.get_session_settings(f"guild:{w.guild.id}")
    assert guild.member_notes is True
    assert "remember" in (await asked(w, w.alice, "hello")).tool_names
