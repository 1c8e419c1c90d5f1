"""Files in questions end to end: /ask (and a mention) with a text file or a PDF, quoted for the
model with its name; files too large, binary or too long for the window refused privately."""

from __future__ import annotations

import random
from pathlib import Path

from fpdf import FPDF

from tests.e2e.conftest import (
    World,
    ollama_paths,
    private_notes,
    stored_messages,
    wait_private_note,
    world,
)
from tests.e2e.test_ask import finished, footer_of
from tests.emulators.discord_server import InteractionRecord, Upload
from tests.emulators.ollama_server import RecordedRequest

SESSION = "channel:{}"
REPORT_PAGES = (
    "Quarterly report. Revenue grew by twelve percent.",
    "Outlook. The launch of the new product moves to May.",
)


def make_pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text=text)
    return bytes(pdf.output())


def chats(w: World) -> list[RecordedRequest]:
    return [r for r in w.ollama.requests if r.path == "/api/chat"]


def public_text(rec: InteractionRecord) -> str:
    shown = [rec.original, *rec.followups]
    return "\n".join(m.content for m in shown if m and not m.ephemeral and not m.deleted)


async def ask_with_file(w: World, prompt: str, file: Upload) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt, "file": file}
    )


async def refused(w: World, rec: InteractionRecord) -> str:
    """The private note a refused question got; nothing public remains, nothing was asked
    or stored."""
    note = await wait_private_note(rec)
    await rec.wait_quiet()
    assert public_text(rec) == ""
    assert "/api/chat" not in ollama_paths(w.ollama)
    assert await w.bot.manager.store.messages(SESSION.format(w.channel.id)) == []
    return note


# ----- the model reads the file -------------------------------------------------------------


async def test_a_pdf_is_quoted_page_by_page_before_the_question(w: World) -> None:
    w.ollama.set_reply("Revenue grew by twelve percent; the launch moves to May.")
    rec = await ask_with_file(
        w, "Summarize the outlook.", Upload("report.pdf", make_pdf(*REPORT_PAGES))
    )
    messages = await finished(rec)

    (request,) = chats(w)
    question = request.messages[-1]
    assert question["role"] == "user"
    content = question["content"]
    assert content.startswith("File `report.pdf` (PDF, 2 pages):\n```\n[Page 1]\n")
    assert content.endswith("\n```\n\nSummarize the outlook.")
    first, second = content.index(REPORT_PAGES[0]), content.index(REPORT_PAGES[1])
    assert first < content.index("[Page 2]") < second
    assert messages[0].content.startswith("Revenue grew by twelve percent")
    assert footer_of(messages).startswith("-# llama3.2")
    # The conversation remembers the question as asked, file included.
    stored = await stored_messages(w, SESSION.format(w.channel.id), 2)
    assert stored[0]["content"] == content


async def test_a_text_file_is_quoted_with_its_name_and_language(w: World) -> None:
    code = "def total(xs):\n    return sum(xs) / len(xs)  # ``` not a fence\n"
    rec = await ask_with_file(w, "Why does this fail on []?", Upload("stats.py", code.encode()))
    await finished(rec)
    (request,) = chats(w)
    # The fence is longer than the backticks inside, so the file cannot end it early.
    expected = f"File `stats.py`:\n````py\n{code}````\n\nWhy does this fail on []?"
    assert request.messages[-1]["content"] == expected


async def test_a_mention_with_a_file_quotes_it_too(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        notes = "Agenda: budget, hiring, launch date.\n"
        await w.discord.send_user_message(
            w.channel.id,
            w.alice.id,
            "what is on the agenda?",
            mentions=[w.discord.bot_user_id],
            attachments=[Upload("agenda.txt", notes.encode())],
        )
        await w.discord.wait_for(lambda: len(chats(w)) == 1, timeout=10)
        content = chats(w)[0].messages[-1]["content"]
        assert content == f"File `agenda.txt`:\n```\n{notes}```\n\nwhat is on the agenda?"


# ----- refusals -----------------------------------------------------------------------------


async def test_an_oversize_file_is_refused_without_downloading_it(w: World) -> None:
    upload = Upload("scans.pdf", make_pdf("small"), size=12 * 1024 * 1024)
    rec = await ask_with_file(w, "What does it say?", upload)
    note = await refused(w, rec)
    assert note == "`scans.pdf` is 12.0 MB; the limit is 10 MB."
    assert w.discord.cdn_fetches_of(w.discord.attachments_of(rec)[0]) == []


async def test_a_binary_file_is_refused_with_what_files_can_be(w: World) -> None:
    rng = random.Random(3)
    noise = bytes(rng.randrange(1, 256) for _ in range(4000))
    rec = await ask_with_file(w, "What is this?", Upload("firmware.bin", noise))
    note = await refused(w, rec)
    assert note == (
        "`firmware.bin` is not a text file. "
        "Files can be text, Markdown, source code, CSV, JSON or PDF."
    )


async def test_an_image_given_as_a_file_is_named_for_what_it_is(w: World) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
    rec = await ask_with_file(w, "What is this?", Upload("diagram.png", png))
    note = await refused(w, rec)
    assert note.startswith("`diagram.png` is a PNG image, not a document.")


async def test_a_file_too_long_for_the_window_is_refused_before_asking(w: World) -> None:
    # About 20,000 tokens against the 8,192-token window the channel runs with.
    minutes = "".join(
        f"Item {i}: the committee agreed to revisit this later.\n" for i in range(1100)
    )
    rec = await ask_with_file(w, "What was agreed?", Upload("minutes.txt", minutes.encode()))
    note = await refused(w, rec)
    assert note.startswith("`minutes.txt` is too long for the model's context window")
    assert "`/summarize file:` can summarize it instead" in note
    assert not private_notes(rec)[1:]  # one note, not one per problem
