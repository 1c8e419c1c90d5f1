"""Tools cannot read outside what their place allows: the model, asked in one channel, calls
search_conversation and read_channel, and what they send back holds nothing of another
channel's conversation or messages, nor of another member's own conversation.

(Documents limited to a channel, through retrieval and /kb search, and members' notes are
covered in tests/e2e/test_knowledge.py and tests/e2e/test_memory.py; docs/reliability.md
lists them.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, chat_bodies, stored_messages, wait_private_note, world
from tests.e2e.test_ask import ask, finished
from tests.emulators.discord_server import Channel

SECRET = "the vault code is 4-8-15-16-23"
SEARCH = ("search_conversation", {"query": "vault code"})
READ = ("read_channel", {"limit": 50})


def tool_results(w: World) -> list[str]:
    """What the bot sent back to the model as tool results, in every request."""
    return [
        m["content"]
        for body in chat_bodies(w.ollama)
        for m in body.get("messages") or []
        if m.get("role") == "tool"
    ]


def offered(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}


async def admin_turns_on_tools(w: World, channel: Channel, names: str) -> None:
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="tools",
        user_id=w.admin.id,
        **w.in_channel(channel),
        options={"names": names},
    )
    await wait_private_note(rec)


@pytest.fixture
async def reader(tmp_path: Path) -> AsyncIterator[World]:
    """A bot that may read channel history (MESSAGE_CONTENT_INTENT), as read_channel needs."""
    async with world(tmp_path, MESSAGE_CONTENT_INTENT="true") as value:
        yield value


async def test_tools_in_one_channel_cannot_read_another(reader: World) -> None:
    w = reader
    # Channel A holds the secret twice: in its conversation with the bot and in a message.
    w.ollama.set_reply("Noted.")
    await finished(await ask(w, f"Remember: {SECRET}."))
    await stored_messages(w, f"channel:{w.channel.id}", 2)
    await w.discord.send_user_message(w.channel.id, w.bob.id, f"psst, {SECRET}")

    other = w.discord.add_channel(w.guild.id, "other")
    await admin_turns_on_tools(w, other, "search_conversation,read_channel")
    w.ollama.script_tools([[SEARCH, READ]], final="Found: {tools}")
    await w.discord.send_user_message(other.id, w.bob.id, "nothing to see here")
    answer = await finished(await ask(w, "What is the vault code?", channel=other))

    assert {"search_conversation", "read_channel"} <= offered(chat_bodies(w.ollama)[-1])
    results = tool_results(w)
    assert len(results) == 2, results  # both tools ran
    assert "nothing to see here" in "\n".join(results)  # read_channel read its own channel
    assert not [r for r in results if "4-8-15-16" in r], results
    assert "4-8-15-16" not in "\n".join(m.content for m in answer)
    # Asked in channel A, both tools find it: the tools work, the boundary is what held.
    await admin_turns_on_tools(w, w.channel, "search_conversation,read_channel")
    await finished(await ask(w, "What is the vault code?"))
    assert all("4-8-15-16" in r for r in tool_results(w)[-2:]), tool_results(w)[-2:]


async def test_a_member_cannot_search_another_members_conversation(w: World) -> None:
    # One conversation per member in this channel: bob's tools see bob's only.
    rec = await w.discord.invoke_slash(
        "settings", subcommand="scope", user_id=w.admin.id, **w.where, options={"scope": "user"}
    )
    await wait_private_note(rec)
    w.ollama.set_reply("Noted.")
    await finished(await ask(w, f"Remember: {SECRET}.", user=w.alice))
    await stored_messages(w, f"channel:{w.channel.id}:user:{w.alice.id}", 2)

    w.ollama.script_tools([[SEARCH]], final="Found: {tools}")
    answer = await finished(await ask(w, "What is the vault code?", user=w.bob))
    results = tool_results(w)
    assert len(results) == 1, results
    assert "4-8-15-16" not in results[0]
    assert "4-8-15-16" not in "\n".join(m.content for m in answer)
    # The same search by alice finds it: the tool works, the boundary is what held.
    await finished(await ask(w, "What is the vault code?", user=w.alice))
    assert "4-8-15-16" in tool_results(w)[-1]
