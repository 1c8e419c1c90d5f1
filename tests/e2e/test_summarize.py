"""/summarize end to end: files, pasted text, channel history, and the map-reduce path."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.documents import MAX_DOCUMENT_CHARS
from bot.presentation.summarizing import MAX_TRANSCRIPT_CHARS
from tests.e2e.conftest import World, chat_bodies, ollama_paths, wait_private_note, world
from tests.e2e.test_files import make_pdf
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    InteractionRecord,
    Permission,
    Upload,
)
from tests.emulators.ollama_server import EmulatedModel

SUMMARY = "The text says that the launch moved to May."


@pytest.fixture
async def reader(tmp_path: Path) -> AsyncIterator[World]:
    """A bot that may read channel history (MESSAGE_CONTENT_INTENT)."""
    async with world(tmp_path, MESSAGE_CONTENT_INTENT="true") as value:
        yield value


def last_user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


async def summarize(
    w: World, options: dict[str, Any] | None = None, **kwargs: Any
) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "summarize", user_id=w.alice.id, **w.where, options=options, **kwargs
    )


async def finished(rec: InteractionRecord) -> str:
    await rec.wait_done(lambda r: r.original is not None and "\n-# " in r.original.content)
    assert rec.original is not None
    return rec.original.content


async def test_an_attached_text_file_is_summarized(w: World) -> None:
    w.ollama.set_reply(SUMMARY)
    document = "Minutes of the planning meeting.\nThe launch moves from April to May.\n"
    attachment = w.discord.add_attachment("minutes.txt", document.encode())
    rec = await summarize(w, attachments=[attachment])
    content = await finished(rec)
    assert content.startswith(SUMMARY)
    assert "\n-# llama3.2 · " in content and "tokens" in content
    (body,) = chat_bodies(w.ollama)
    assert document.strip() in last_user_text(body)
    assert body["messages"][0]["role"] == "system"  # the summarizer's own instructions
    assert body["stream"] is True
    assert w.discord.rest.cdn_downloads == 1


async def test_pasted_text_is_summarized(w: World) -> None:
    w.ollama.set_reply(SUMMARY)
    text = "Bob: the launch slips to May.\nAlice: fine, I will tell marketing."
    content = await finished(await summarize(w, {"text": text, "style": "bullets"}))
    assert content.startswith(SUMMARY)
    prompt = last_user_text(chat_bodies(w.ollama)[-1])
    assert text in prompt
    assert "bullet points" in prompt


async def test_the_last_n_messages_are_summarized_oldest_first(reader: World) -> None:
    w = reader
    for i in range(1, 7):
        w.discord.add_message(w.channel.id, (w.alice if i % 2 else w.bob).id, f"message {i}")
    w.ollama.set_reply(SUMMARY)
    content = await finished(await summarize(w, {"messages": 3}))
    assert content.startswith(SUMMARY)
    prompt = last_user_text(chat_bodies(w.ollama)[-1])
    lines = [line for line in prompt.splitlines() if "message " in line]
    assert [line.split("] ", 1)[1] for line in lines] == [
        "bob: message 4",
        "alice: message 5",
        "bob: message 6",
    ]


async def test_history_without_the_message_content_intent_is_explained(w: World) -> None:
    w.discord.add_message(w.channel.id, w.alice.id, "something to summarize")
    before = len(w.ollama.requests)
    rec = await summarize(w, {"messages": 10})
    note = await wait_private_note(rec)
    assert "Message Content intent" in note
    assert rec.ack_type == 4 and rec.ephemeral  # refused before any public "thinking…"
    assert ollama_paths(w.ollama, before) == []


async def test_history_without_read_message_history_names_the_permission(reader: World) -> None:
    w = reader
    w.discord.add_message(w.channel.id, w.alice.id, "something to summarize")
    w.discord.set_bot_permissions(
        w.channel.id, DEFAULT_PERMISSIONS & ~Permission.READ_MESSAGE_HISTORY
    )
    before = len(w.ollama.requests)
    note = await wait_private_note(await summarize(w, {"messages": 10}))
    assert "Read Message History" in note
    assert ollama_paths(w.ollama, before) == []


async def test_more_than_one_source_is_refused(w: World) -> None:
    attachment = w.discord.add_attachment("notes.txt", b"some notes")
    before = len(w.ollama.requests)
    rec = await summarize(w, {"text": "some text"}, attachments=[attachment])
    note = await wait_private_note(rec)
    assert "only one of" in note
    assert ollama_paths(w.ollama, before) == []


async def test_a_file_over_10_mb_is_refused_before_download(w: World) -> None:
    # Discord's declared size decides: the CDN would serve only these few bytes.
    upload = Upload("huge.txt", b"a" * 100, size=11 * 1024 * 1024)
    before = len(w.ollama.requests)
    rec = await summarize(w, attachments=[upload])
    note = await wait_private_note(rec)
    assert note == "`huge.txt` is 11.0 MB; the limit is 10 MB."
    assert rec.ack_type == 4 and rec.ephemeral  # refused before any public "thinking…"
    assert w.discord.rest.cdn_downloads == 0
    assert ollama_paths(w.ollama, before) == []


async def test_a_file_too_long_for_a_question_is_summarized_in_parts(w: World) -> None:
    document = "".join(
        f"Line {i}: the committee discussed item {i} at length.\n" for i in range(5000)
    )
    assert MAX_DOCUMENT_CHARS < len(document) < MAX_TRANSCRIPT_CHARS
    attachment = w.discord.add_attachment("minutes.txt", document.encode())
    w.ollama.set_reply("The committee discussed many items.")
    before = len(w.ollama.requests)
    # About a dozen parts at the default window, then their combination.
    await finished(await summarize(w, attachments=[attachment]))
    chats = [p for p in ollama_paths(w.ollama, before) if p == "/api/chat"]
    assert len(chats) > 2  # parts, then their combination


async def test_a_file_too_long_even_to_summarize_is_refused_without_a_loop(w: World) -> None:
    document = "".join(
        f"Line {i}: the committee discussed item {i} at length.\n" for i in range(25_000)
    )
    assert len(document) > MAX_TRANSCRIPT_CHARS
    attachment = w.discord.add_attachment("archive.txt", document.encode())
    before = len(w.ollama.requests)
    note = await wait_private_note(await summarize(w, attachments=[attachment]))
    assert note.startswith("`archive.txt` is too long to summarize")
    assert f"{MAX_TRANSCRIPT_CHARS:,} characters" in note
    assert "/summarize" not in note  # the advice for questions would send them back here
    assert ollama_paths(w.ollama, before) == []


async def test_a_binary_file_is_politely_refused(w: World) -> None:
    attachment = w.discord.add_attachment(
        "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "image/png"
    )
    before = len(w.ollama.requests)
    note = await wait_private_note(await summarize(w, attachments=[attachment]))
    assert note.startswith("`photo.png` is a PNG image, not a document.")
    assert ollama_paths(w.ollama, before) == []


async def test_a_transcript_larger_than_the_context_is_summarized_in_parts(
    tmp_path: Path,
) -> None:
    small = EmulatedModel("llama3.2:latest", context_length=1024)
    async with world(tmp_path, ollama_options={"models": [small]}) as w:

        def reply(body: dict[str, Any]) -> str:
            prompt = last_user_text(body)
            if "part " in prompt.split("\n", 1)[0]:
                return f"Notes on {prompt.split(' of a ', 1)[0].removeprefix('Here is ')}."
            return SUMMARY

        w.ollama.set_reply(reply)
        # About 20,000 characters against a budget of 2,048 (1024 tokens x 4 chars x 1/2).
        document = "".join(
            f"Line {i}: the committee discussed item {i} at length.\n" for i in range(400)
        )
        attachment = w.discord.add_attachment("transcript.txt", document.encode())
        rec = await summarize(w, attachments=[attachment])
        content = await finished(rec)
        assert content.startswith(SUMMARY)
        bodies = chat_bodies(w.ollama)
        parts = len(bodies) - 1
        assert parts >= 5
        for i, body in enumerate(bodies[:-1], 1):
            assert last_user_text(body).startswith(f"Here is part {i} of {parts} of a document.")
        # Every line of the transcript went to exactly one part.
        pieces = [last_user_text(b).split("\n\n", 1)[1] for b in bodies[:-1]]
        assert "".join(pieces) == document.strip()
        assert max(len(p) for p in pieces) <= 1024 * 4 // 2
        final = last_user_text(bodies[-1])
        assert final.startswith("Here is a set of partial summaries of a document, in order.")
        assert f"Part {parts}:\nNotes on part {parts} of {parts}." in final
        history = [text for _, text in rec.original.edits]
        assert any("Summarizing part" in text for text in history), history


async def test_summaries_are_not_stored_in_the_conversation(reader: World) -> None:
    w = reader
    w.discord.add_message(w.channel.id, w.alice.id, "let us ship on Friday")
    await finished(await summarize(w, {"text": "Pasted notes to summarize."}))
    await finished(await summarize(w, {"messages": 5}))
    assert await w.bot.manager.store.messages(f"channel:{w.channel.id}") == []
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "what did we say?"}
    )
    await finished(rec)
    assert [m["role"] for m in chat_bodies(w.ollama)[-1]["messages"]] == ["user"]


async def test_every_page_of_a_private_summary_is_private(w: World) -> None:
    long_summary = "\n\n".join(f"Point {i}: " + "detail " * 60 for i in range(12))
    assert len(long_summary) > 2 * 2000
    w.ollama.set_reply(long_summary)
    rec = await summarize(w, {"text": "Notes to summarize privately.", "private": True})
    await rec.wait_done(lambda r: bool(r.followups) and "\n-# " in r.followups[-1].content)
    pages = [rec.original, *rec.followups]
    assert len(pages) >= 3
    assert all(page is not None and page.ephemeral for page in pages), [
        (page.id, page.ephemeral) for page in pages if page is not None
    ]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        # Of even length: UTF-16 "decoded" it without an error, into CJK noise.
        ("Résumé of the café meeting.\n", "latin-1"),
        ("Smart “quotes” – and a €5 budget for the café.\n", "cp1252"),
        ("Встреча в четверг: обсудили бюджет и сроки проекта.\n", "cp1251"),
        ("Notes in UTF-16, with a byte order mark: ça va.\n", "utf-16"),
        ("Plain UTF-8 notes: 会議は木曜日です。\n", "utf-8"),
    ],
)
async def test_text_files_in_legacy_encodings_reach_the_model_intact(
    w: World, text: str, encoding: str
) -> None:
    data = text.encode(encoding)
    w.ollama.set_reply(SUMMARY)
    attachment = w.discord.add_attachment("notes.txt", data)
    await finished(await summarize(w, attachments=[attachment]))
    assert text.strip() in last_user_text(chat_bodies(w.ollama)[-1])


async def test_binary_data_without_zero_bytes_is_refused(w: World) -> None:
    rng = random.Random(7)
    noise = bytes(rng.randrange(1, 256) for _ in range(3000))  # no zero byte to give it away
    attachment = w.discord.add_attachment("data.bin", noise, "application/octet-stream")
    before = len(w.ollama.requests)
    note = await wait_private_note(await summarize(w, attachments=[attachment]))
    assert note == (
        "`data.bin` is not a text file. Files can be text, Markdown, source code, CSV, JSON or PDF."
    )
    assert ollama_paths(w.ollama, before) == []


async def test_a_two_page_pdf_is_summarized(w: World) -> None:
    w.ollama.set_reply(SUMMARY)
    pdf = make_pdf(
        "Minutes of the planning meeting. Attendees: Ana, Bo.",
        "Decision: the launch moves from April to May.",
    )
    rec = await summarize(w, {"style": "bullets"}, attachments=[Upload("minutes.pdf", pdf)])
    content = await finished(rec)
    assert content.startswith(SUMMARY)
    (body,) = chat_bodies(w.ollama)
    prompt = last_user_text(body)
    assert prompt.startswith("Here is a document.\nSummarize as a list of concise bullet points.")
    assert prompt.endswith(
        "[Page 1]\nMinutes of the planning meeting. Attendees: Ana, Bo.\n\n"
        "[Page 2]\nDecision: the launch moves from April to May."
    )


async def test_a_long_pdf_is_summarized_in_parts(tmp_path: Path) -> None:
    small = EmulatedModel("llama3.2:latest", context_length=1024)
    async with world(tmp_path, ollama_options={"models": [small]}) as w:
        w.ollama.set_reply(
            lambda body: "Notes." if last_user_text(body).startswith("Here is part ") else SUMMARY
        )
        pages = [
            " ".join(
                f"Page {p} point {i}: the budget for item {i} was approved." for i in range(12)
            )
            for p in range(1, 9)
        ]
        rec = await summarize(w, attachments=[Upload("board.pdf", make_pdf(*pages))])
        content = await finished(rec)
        assert content.startswith(SUMMARY)
        bodies = chat_bodies(w.ollama)
        parts = len(bodies) - 1
        assert parts >= 3
        prompts = [last_user_text(b) for b in bodies]
        for i, prompt in enumerate(prompts[:-1], 1):
            assert prompt.startswith(f"Here is part {i} of {parts} of a document.")
        # Every page went to the model, in order, each once.
        sent = "".join(prompts[:-1])
        positions = [sent.index(f"[Page {p}]") for p in range(1, 9)]
        assert positions == sorted(positions)
        assert all(sent.count(f"[Page {p}]") == 1 for p in range(1, 9))
        assert prompts[-1].startswith("Here is a set of partial summaries of a document")
