"""Knowledge bases end to end: /kb add, list, search, remove and reembed, answers citing the
server's documents, and /settings knowledge; the real bot against both emulators.

The Ollama emulator embeds a text as a bag of its words: a question sharing three of a
passage's eight topic words scores about 3/sqrt(3*8) = 0.61 against it (over the 0.5
floor), one sharing none about 0.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.core.knowledge.prompt import NO_SOURCES, WITH_SOURCES
from bot.discord_app.routing import Place
from tests.e2e.conftest import (
    World,
    e2e_settings,
    running_bot,
    stored_messages,
    wait_private_note,
)
from tests.e2e.test_ask import ask, finished, footer_of, pages_without_footer
from tests.e2e.test_files import make_pdf
from tests.emulators import ollama_models as catalogue
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    InteractionRecord,
    Permission,
    Upload,
    User,
)
from tests.emulators.ollama_server import OllamaEmulator
from tests.support.databases import count_rows, fetch_all

PARKING = "Visitors park their bicycles behind the greenhouse, next to the orchard gate."
PARKING_QUESTION = "Where do visitors park their bicycles?"
MEETINGS = "The committee meets on the first Thursday of each month in the library annex."
MEETINGS_QUESTION = "When does the committee meet each month?"
UNRELATED_QUESTION = "Who won the football final yesterday?"
SCORE = re.compile(r"\*\*1\.\*\* `(\d\.\d\d)` ")


# helpers ------------------------------------------------------------------------------------
async def kb(
    w: World,
    subcommand: str,
    *,
    user: User | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> InteractionRecord:
    where = w.in_channel(channel) if channel is not None else w.where
    return await w.discord.invoke_slash(
        "kb", subcommand=subcommand, user_id=(user or w.admin).id, **where, options=options
    )


async def kb_note(w: World, subcommand: str, **options: Any) -> str:
    return await wait_private_note(await kb(w, subcommand, **options))


async def add(w: World, filename: str, data: bytes | str, **options: Any) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return await kb_note(w, "add", file=Upload(filename, raw), **options)


def asked(w: World) -> list[str]:
    """The last user message of every /api/chat request: the question as the model saw it."""
    return [
        (r.json or {})["messages"][-1]["content"]
        for r in w.ollama.requests
        if r.path == "/api/chat"
    ]


def rows(w: World, table: str) -> int:
    return count_rows(w.settings.database_url, table)


def embeds(w: World) -> int:
    return sum(1 for r in w.ollama.requests if r.path == "/api/embed")


def searched_for(w: World, question: str) -> bool:
    """Whether ``question`` (asked once) was embedded before the model was asked it: a
    knowledge search. The turn index embeds a question only once its turn is stored."""
    for request in w.ollama.requests:
        body = request.json or {}
        if request.path == "/api/chat" and body["messages"][-1]["content"].endswith(question):
            return False
        if request.path == "/api/embed" and question in str(body.get("input")):
            return True
    raise AssertionError(f"{question!r} was never asked")


# add, search, cite, remove -----------------------------------------------------------------
async def test_a_document_is_added_searched_cited_and_removed(w: World) -> None:
    note = await add(w, "parking.txt", PARKING)
    assert note.startswith("📚 Added `parking.txt`: 1 passage, 77 characters. Used in all")

    found = await kb_note(w, "search", user=w.alice, query="where do visitors park bicycles")
    assert "parking.txt" in found and PARKING in found
    score = SCORE.search(found)
    assert score is not None and float(score.group(1)) >= 0.5

    w.ollama.set_reply("Behind the greenhouse, by the orchard gate [1].")
    messages = await finished(await ask(w, PARKING_QUESTION))
    assert searched_for(w, PARKING_QUESTION)
    question = asked(w)[-1]
    assert question.startswith(WITH_SOURCES)
    assert f"[1] From parking.txt:\n{PARKING}" in question
    assert question.endswith(f"Question: {PARKING_QUESTION}")
    assert pages_without_footer(messages) == ["Behind the greenhouse, by the orchard gate [1]."]
    assert footer_of(messages).endswith(" · 📚 [1] parking.txt")
    # The conversation keeps the question as asked: the sources are not stored with it.
    stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert stored[0]["content"] == PARKING_QUESTION

    assert rows(w, "kb_chunks") == 1
    removed = await kb_note(w, "remove", name="parking.txt")
    assert removed == "🗑️ Removed `parking.txt` and its 1 passage."
    assert rows(w, "kb_chunks") == rows(w, "kb_documents") == 0  # vectors live in kb_chunks
    assert "empty" in await kb_note(w, "list", user=w.alice)
    # Without documents nothing is searched: the question goes as asked, nothing embedded.
    again = await finished(await ask(w, "And where do visitors park bicycles now?"))
    assert asked(w)[-1] == "And where do visitors park bicycles now?"
    assert not searched_for(w, "And where do visitors park bicycles now?")
    assert "📚" not in footer_of(again)


async def test_a_question_without_a_relevant_passage_cites_nothing(w: World) -> None:
    await add(w, "parking.txt", PARKING)
    w.ollama.set_reply("I found nothing about that in the server's documents.")
    messages = await finished(await ask(w, UNRELATED_QUESTION))
    question = asked(w)[-1]
    assert question == f"{NO_SOURCES}\n\nQuestion: {UNRELATED_QUESTION}"
    assert PARKING not in question
    assert "📚" not in footer_of(messages)
    nothing = await kb_note(w, "search", user=w.alice, query=UNRELATED_QUESTION)
    assert nothing.startswith("📚 Nothing in the knowledge base usable here scores 0.50 or more")


async def test_a_pdf_is_cited_with_its_page(w: World) -> None:
    pdf = make_pdf("Attendance list of the spring gathering.", MEETINGS)
    note = await add(w, "minutes.pdf", pdf)
    assert note.startswith("📚 Added `minutes.pdf`: 2 passages, ") and ", 2 pages." in note
    listing = await kb_note(w, "list", user=w.alice)
    assert "• `minutes.pdf`: 2 passages, 2 pages · all channels" in listing

    w.ollama.set_reply("On the first Thursday of the month [1].")
    messages = await finished(await ask(w, MEETINGS_QUESTION))
    assert f"[1] From minutes.pdf p. 2:\n{MEETINGS}" in asked(w)[-1]
    assert footer_of(messages).endswith(" · 📚 [1] minutes.pdf p. 2")
    found = await kb_note(w, "search", user=w.bob, query=MEETINGS_QUESTION)
    assert "minutes.pdf p. 2" in found


async def test_a_failing_embedding_model_leaves_the_answer_without_sources(w: World) -> None:
    await add(w, "parking.txt", PARKING)
    w.ollama.fail_next(4, paths=("/api/embed",))  # the first try and its three retries
    w.ollama.set_reply("Probably near the entrance.")
    messages = await finished(await ask(w, PARKING_QUESTION))
    assert w.ollama.pending_faults == []
    assert asked(w)[-1] == PARKING_QUESTION
    assert pages_without_footer(messages) == ["Probably near the entrance."]
    assert footer_of(messages).endswith(" · 📚 knowledge base unavailable: answered without it")


# channels and settings ---------------------------------------------------------------------
async def test_a_document_limited_to_a_channel_is_not_used_elsewhere(w: World) -> None:
    staff = w.discord.add_channel(w.guild.id, "staff")
    note = await add(w, "parking.txt", PARKING, channels=f"<#{staff.id}>")
    assert note.endswith(f"Used in <#{staff.id}>.")
    listing = await kb_note(w, "list", user=w.alice)
    assert f"• `parking.txt`: 1 passage · <#{staff.id}>" in listing

    await finished(await ask(w, PARKING_QUESTION))
    assert PARKING not in asked(w)[-1]
    assert asked(w)[-1].startswith(NO_SOURCES)
    elsewhere = await kb_note(w, "search", user=w.alice, query=PARKING_QUESTION)
    assert elsewhere.startswith("📚 Nothing in the knowledge base usable here")

    w.ollama.set_reply("Behind the greenhouse [1].")
    there = await finished(await ask(w, PARKING_QUESTION, channel=staff))
    assert f"[1] From parking.txt:\n{PARKING}" in asked(w)[-1]
    assert footer_of(there).endswith("📚 [1] parking.txt")
    unknown = await kb_note(w, "add", file=Upload("x.txt", b"words"), channels="#nowhere")
    assert unknown == "There is no channel `nowhere` in this server."


async def test_settings_knowledge_turns_it_off_and_limits_passages(w: World) -> None:
    await add(w, "parking.txt", PARKING)
    await add(w, "bikes.txt", "Bicycles of visitors park in the greenhouse shed.")
    await finished(await ask(w, PARKING_QUESTION))
    assert "[2] From " in asked(w)[-1]

    one = await w.discord.invoke_slash(
        "settings", subcommand="knowledge", user_id=w.admin.id, **w.where, options={"passages": 1}
    )
    assert "up to 1 passages a question (this channel)" in await wait_private_note(one)
    await finished(await ask(w, PARKING_QUESTION))
    assert "[1] From " in asked(w)[-1] and "[2] From " not in asked(w)[-1]

    off = await w.discord.invoke_slash(
        "settings", subcommand="knowledge", user_id=w.admin.id, **w.where, options={"use": "off"}
    )
    assert (await wait_private_note(off)).startswith("Saved. Knowledge base here: off (this")
    messages = await finished(await ask(w, "So where do visitors park bicycles?"))
    assert asked(w)[-1] == "So where do visitors park bicycles?"
    assert not searched_for(w, "So where do visitors park bicycles?")
    assert "📚" not in footer_of(messages)

    show = await w.discord.invoke_slash(
        "settings", subcommand="show", user_id=w.admin.id, **w.where
    )
    await show.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
    fields = {
        f["name"]: f["value"]
        for m in [show.original, *show.followups]
        if m
        for e in m.embeds
        for f in e.get("fields", [])
    }
    assert fields["Knowledge base"] == (
        "off (this channel), up to 1 passages a question (this channel); 2 documents"
    )
    reset = await w.discord.invoke_slash(
        "settings", subcommand="reset", user_id=w.admin.id, **w.where
    )
    await wait_private_note(reset)
    await finished(await ask(w, PARKING_QUESTION))
    assert "[2] From " in asked(w)[-1]  # on again, with KNOWLEDGE_PASSAGES


# permissions --------------------------------------------------------------------------------
async def test_a_member_cannot_add_remove_or_reembed(w: World) -> None:
    refused = "You need the Manage Server permission to use this command."
    note = await kb_note(w, "add", user=w.alice, file=Upload("parking.txt", PARKING.encode()))
    assert note == refused
    assert rows(w, "kb_documents") == 0 and embeds(w) == 0
    await add(w, "parking.txt", PARKING)
    assert await kb_note(w, "remove", user=w.alice, name="parking.txt") == refused
    assert await kb_note(w, "reembed", user=w.bob) == refused
    assert rows(w, "kb_documents") == 1
    # Only admins are offered the names to remove.
    typed = {"focused": "name", "value": "park", "subcommand": "remove"}
    member = await w.discord.invoke_autocomplete("kb", user_id=w.alice.id, **w.where, **typed)
    admin = await w.discord.invoke_autocomplete("kb", user_id=w.admin.id, **w.where, **typed)
    for rec in (member, admin):
        await rec.wait_done(lambda r: r.autocomplete_choices is not None)
    assert member.autocomplete_choices == []
    assert admin.autocomplete_choices == [{"name": "parking.txt", "value": "parking.txt"}]


# limits and progress ------------------------------------------------------------------------
async def test_files_that_cannot_be_added_are_refused_clearly(w: World) -> None:
    huge = Upload("manual.pdf", make_pdf("small"), size=12 * 1024 * 1024)
    assert await kb_note(w, "add", file=huge) == "`manual.pdf` is 12.0 MB; the limit is 10 MB."
    picture = await kb_note(w, "add", file=Upload("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64)))
    assert picture.startswith("`logo.png` is a PNG image, not a document.")
    too_long = await add(w, "book.txt", "word " * 210_000)
    assert too_long == (
        "`book.txt` is too long for the knowledge base: a document can have at most "
        "1,000,000 characters of text, or 500 pages. Split it into smaller documents."
    )
    assert rows(w, "kb_documents") == 0


async def test_a_large_file_shows_its_progress(w: World) -> None:
    sections = [f"## Part {i}\n\n" + f"Topic {i} sentence. " * 45 for i in range(120)]
    rec = await kb(w, "add", file=Upload("big.md", "\n\n".join(sections).encode()))
    await rec.wait_done(lambda r: r.original is not None and "Added" in r.original.content)
    assert rec.original is not None
    note = rec.original.content
    assert note.startswith("📚 Added `big.md`: 120 passages, ")
    shown = [content for _, content in rec.original.edits]
    assert "⏳ Adding `big.md`: 0 of 120 passages embedded…" in shown
    assert shown[-1] == note
    assert rec.original.ephemeral and rec.followups == []


# a change of embedding model ----------------------------------------------------------------
@asynccontextmanager
async def two_runs(tmp_path: Path) -> AsyncIterator[tuple[DiscordEmulator, OllamaEmulator]]:
    async with (
        DiscordEmulator() as discord_emu,
        OllamaEmulator(catalogue.extended_models()) as ollama,
    ):
        yield discord_emu, ollama


async def test_a_change_of_embedding_model_is_detected_and_re_embedded(
    tmp_path: Path, database_url: str
) -> None:
    async with two_runs(tmp_path) as (discord_emu, ollama):
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        admin = discord_emu.add_user("admin")
        discord_emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        url = database_url
        where = {"channel_id": channel.id, "guild_id": guild.id, "user_id": admin.id}

        async def note(subcommand: str, **options: Any) -> str:
            rec = await discord_emu.invoke_slash(
                "kb", subcommand=subcommand, **where, options=options
            )
            return await wait_private_note(rec)

        async with running_bot(discord_emu, e2e_settings(ollama, url, guild)):
            await note("add", file=Upload("parking.txt", PARKING.encode()))
            assert "parking.txt" in await note("search", query=PARKING_QUESTION)

        changed = e2e_settings(ollama, url, guild, EMBEDDING_MODEL="mxbai-embed-large")
        async with running_bot(discord_emu, changed):
            listing = await note("list")
            assert "⚠️ 1 passage embedded with another model than `mxbai-embed-large`" in listing
            assert "until an admin runs `/kb reembed`" in listing
            assert "• `parking.txt`: 1 passage, ⚠️ 1 to re-embed · all channels" in listing
            assert (await note("search", query=PARKING_QUESTION)).startswith("📚 Nothing")

            done = await note("reembed")
            assert done == (
                "📚 Re-embedded 1 passage with `mxbai-embed-large`: answers use them again."
            )
            assert "⚠️" not in await note("list")
            assert "parking.txt" in await note("search", query=PARKING_QUESTION)
            embedded = [r.json or {} for r in ollama.requests if r.path == "/api/embed"]
            assert embedded[-1]["model"] == "mxbai-embed-large"
            models = {m for (m,) in fetch_all(url, "SELECT model FROM kb_chunks")}
            assert models == {"mxbai-embed-large"}
            assert await note("reembed") == (
                "📚 Nothing to re-embed: every passage is embedded with `mxbai-embed-large`."
            )


async def test_direct_messages_have_no_knowledge_base(w: World) -> None:
    await add(w, "parking.txt", PARKING)
    dm = w.discord.dm_channel(w.alice.id)
    in_a_dm = await w.bot.router.target(Place(dm.id, w.alice.id))
    assert in_a_dm.knowledge is False and in_a_dm.knowledge_scope is None
    here = await w.bot.router.target(Place(w.channel.id, w.alice.id, w.guild.id))
    assert here.knowledge is True and here.knowledge_scope == f"guild:{w.guild.id}"
    assert here.channel_id == w.channel.id and here.knowledge_passages is None
