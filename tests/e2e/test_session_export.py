"""/session export end to end: the conversation of the place it is asked in, as a private
file (Markdown or JSON), from the real bot against the emulators."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, stored_messages, wait_private_note, world
from tests.e2e.test_ask import finished
from tests.e2e.test_images import photo
from tests.emulators.discord_server import Attachment, Channel, InteractionRecord, Upload, User
from tests.emulators.discord_state import DEFAULT_PERMISSIONS
from tests.emulators.ollama_models import extended_models


async def ask(w: World, user: User, prompt: str, channel: Channel | None = None) -> None:
    """Ask and wait until the turn is stored."""
    where = w.in_channel(channel or w.channel)
    session = f"channel:{where['channel_id']}"
    before = len(await w.bot.manager.store.messages(session))
    rec = await w.discord.invoke_slash("ask", user_id=user.id, **where, options={"prompt": prompt})
    await finished(rec)
    # The answer is shown before its turn is stored.
    await stored_messages(w, session, before + 2)


async def export(
    w: World, user: User, fmt: str | None = None, channel: Channel | None = None
) -> InteractionRecord:
    rec = await w.discord.invoke_slash(
        "session",
        subcommand="export",
        user_id=user.id,
        **w.in_channel(channel or w.channel),
        options={"format": fmt} if fmt else None,
    )
    await wait_private_note(rec)
    return rec


def exported_file(rec: InteractionRecord) -> Attachment:
    """The one file of the private answer; the message itself pings nobody."""
    assert rec.ephemeral and rec.original is not None
    assert not rec.original.mentions
    (attachment,) = rec.original.attachments
    return attachment


async def test_markdown_has_the_turns_in_order(w: World) -> None:
    await ask(w, w.alice, "first question")
    await ask(w, w.bob, "second question")
    rec = await export(w, w.admin)
    attachment = exported_file(rec)
    assert attachment.filename == "conversation.md"
    text = attachment.data.decode()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## User", "## Assistant"] * 2
    order = [
        text.index(s)
        for s in ("first question", "Echo: first question", "second question", "Echo: second")
    ]
    assert order == sorted(order)
    assert "- model: llama3.2" in text
    assert "This conversation, 4 messages." in rec.original.content


async def test_json_is_a_document_of_every_message(w: World) -> None:
    await ask(w, w.alice, "what is a lighthouse?")
    await ask(w, w.alice, "and a lightship?")
    rec = await export(w, w.admin, "json")
    attachment = exported_file(rec)
    assert attachment.filename == "conversation.json"
    document: dict[str, Any] = json.loads(attachment.data)
    assert [(m["role"], m["content"]) for m in document["messages"]] == [
        ("user", "what is a lighthouse?"),
        ("assistant", "Echo: what is a lighthouse?"),
        ("user", "and a lightship?"),
        ("assistant", "Echo: and a lightship?"),
    ]
    assert document["model"] == "llama3.2"
    assert document["session_id"] == f"channel:{w.channel.id}"
    assert document["created_at"] <= document["updated_at"]
    assert document["omitted_messages"] == 0 and document["omitted_images"] == 0


async def test_a_shared_conversation_needs_manage_server(w: World) -> None:
    """It holds answers members asked for privately: a member without Manage Server gets
    a polite refusal, no file (checked by the bot, whatever Discord shows)."""
    await ask(w, w.alice, "a question")
    rec = await w.discord.invoke_slash(
        "session",
        subcommand="export",
        user_id=w.bob.id,
        **w.in_channel(w.channel),
        permissions=DEFAULT_PERMISSIONS,
    )
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    assert rec.original is not None and not rec.original.attachments


async def test_an_empty_conversation_is_said_politely(w: World) -> None:
    await ask(w, w.alice, "spoken elsewhere")
    quiet = w.discord.add_channel(w.guild.id, "quiet")
    rec = await export(w, w.admin, channel=quiet)
    assert rec.ephemeral and rec.original is not None
    assert rec.original.content == "There is no conversation here yet: nothing to export."
    assert rec.original.attachments == []


async def test_another_channels_conversation_is_not_included(w: World) -> None:
    other = w.discord.add_channel(w.guild.id, "random")
    await ask(w, w.alice, "about the general channel")
    await ask(w, w.bob, "about the random channel", channel=other)
    text = exported_file(await export(w, w.admin, channel=other)).data.decode()
    assert "about the random channel" in text
    assert "general" not in text


async def test_a_members_own_conversation_stays_theirs(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "settings", subcommand="scope", user_id=w.admin.id, **w.where, options={"scope": "user"}
    )
    await wait_private_note(rec)
    alice_rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "alice's secret"}
    )
    await finished(alice_rec)
    await stored_messages(w, f"channel:{w.channel.id}:user:{w.alice.id}", 2)
    bobs = await export(w, w.bob)
    assert bobs.original is not None and bobs.original.attachments == []
    alices = exported_file(await export(w, w.alice))
    assert "alice's secret" in alices.data.decode()


@pytest.fixture
async def sees(tmp_path: Path) -> AsyncIterator[World]:
    async with world(
        tmp_path, ollama_options={"models": extended_models()}, VISION_MODEL="gemma3"
    ) as value:
        yield value


async def test_images_are_counted_not_embedded(sees: World) -> None:
    w = sees
    rec = await w.discord.invoke_slash(
        "ask",
        user_id=w.alice.id,
        **w.where,
        options={"prompt": "what is this?", "image": Upload("cat.jpg", photo(64, 48))},
    )
    await finished(rec)
    await stored_messages(w, f"channel:{w.channel.id}", 2)
    exported = await export(w, w.admin, "json")
    document = json.loads(exported_file(exported).data)
    question = document["messages"][0]
    assert "images" not in question and question["image_count"] == 1
    assert document["omitted_images"] == 1
    assert exported.original is not None
    assert "1 image was left out" in exported.original.content
    markdown = exported_file(await export(w, w.admin, "md")).data.decode()
    assert "- images left out: 1" in markdown and "*(1 image left out)*" in markdown
