"""`ollacord kb add|list|remove|search|reembed` against the Ollama emulator.

The emulator embeds a text as a bag of its words, so a question sharing most of its words
with one passage scores high against it, and about 0 against the others.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fpdf import FPDF

from tests.bot.cli.conftest import FakeTerminal, RunCli, assert_one_line_error, exists
from tests.emulators import ollama_models as catalogue
from tests.emulators.ollama_server import OllamaEmulator

GUILD = "4242"
PARKING = "Visitors park their bicycles behind the greenhouse, next to the orchard gate."
DUES = "Membership dues are forty euros, paid to the treasurer every January."
KINDS = "Files can be text, Markdown, source code, CSV, JSON or PDF."
MEETINGS_QUESTION = "when does the committee meet each month?"
MEETINGS = "The committee meets on the first Thursday of each month in the library annex."


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    # Overrides tests/conftest.py's: a second embedding model, for a change of model.
    async with OllamaEmulator(catalogue.extended_models()) as emu:
        yield emu


def make_pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text=text)
    return bytes(pdf.output())


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder of a club's documents: text, Markdown, a PDF, a picture and a hidden file."""
    folder = tmp_path / "docs"
    (folder / "rules").mkdir(parents=True)
    (folder / "parking.txt").write_text(PARKING)
    (folder / "rules" / "dues.md").write_text(f"# Dues\n\n{DUES}\n")
    (folder / "minutes.pdf").write_bytes(make_pdf("Attendance list.", MEETINGS))
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / ".notes.txt").write_text("private scratch notes")
    return folder


def embed_requests(emu: OllamaEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/embed")


def chunk_rows(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT d.name, c.model FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id"
        ).fetchall()
    return [(str(name), str(model)) for name, model in rows]


async def test_a_folder_is_added_listed_searched_and_a_document_removed(
    run_cli: RunCli, docs: Path, db_path: Path, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("kb", "add", str(docs), "--guild", GUILD)
    assert run.code == 0, run
    assert run.err == ""
    lines = run.out.splitlines()
    assert lines[0] == f"skipped logo.png: `logo.png` is a PNG image, not a document. {KINDS}"
    assert lines[1].startswith("added minutes.pdf: 2 passages, ")
    assert lines[1].endswith(", 2 pages")
    assert lines[2].startswith("added parking.txt: 1 passage, ")
    assert lines[3].startswith("added rules/dues.md: 1 passage, ")
    assert lines[4] == "3 of 4 files added or up to date, 1 skipped"

    listing = await run_cli("kb", "list", "--guild", GUILD)
    assert listing.code == 0, listing
    rows = [line.split() for line in listing.out.splitlines()]
    assert rows[0] == ["NAME", "PASSAGES", "PAGES", "CHANNELS", "STALE", "ADDED"]
    assert [row[:5] for row in rows[1:]] == [
        ["minutes.pdf", "2", "2", "all", "-"],
        ["parking.txt", "1", "-", "all", "-"],
        ["rules/dues.md", "1", "-", "all", "-"],
    ]
    # Another server's knowledge base is another one.
    other = await run_cli("kb", "list", "--guild", "7")
    assert other.code == 0 and other.out == ""
    assert other.err == "ollacord: server 7 has no knowledge-base documents\n"

    found = await run_cli("kb", "search", MEETINGS_QUESTION, "--guild", GUILD)
    assert found.code == 0, found
    first, excerpt = found.out.splitlines()[:2]
    assert first.startswith("[1] 0.") and first.endswith("  minutes.pdf p. 2")
    assert float(first.split()[1]) >= 0.5
    assert excerpt.strip() == MEETINGS

    removed = await run_cli("kb", "remove", "minutes.pdf", "--guild", GUILD)
    assert removed.code == 0, removed
    assert removed.out == "removed minutes.pdf (2 passages)\n"
    assert sorted(name for name, _ in chunk_rows(db_path)) == ["parking.txt", "rules/dues.md"]
    gone = await run_cli("kb", "search", MEETINGS_QUESTION, "--guild", GUILD)
    assert gone.code == 0 and gone.out == ""
    assert gone.err == "ollacord: no passage scores 0.50 or more for that question\n"


async def test_the_same_content_again_embeds_nothing(
    run_cli: RunCli, docs: Path, ollama_emu: OllamaEmulator
) -> None:
    parking = docs / "parking.txt"
    assert (await run_cli("kb", "add", str(parking), "--guild", GUILD)).code == 0
    before = embed_requests(ollama_emu)
    again = await run_cli("kb", "add", str(parking), "--guild", GUILD, "--name", "parking.txt")
    assert again.code == 0, again
    assert again.out.startswith("unchanged parking.txt: the same content is already stored")
    assert embed_requests(ollama_emu) == before


async def test_a_document_limited_to_a_channel(run_cli: RunCli, docs: Path) -> None:
    added = await run_cli(
        "kb", "add", str(docs / "parking.txt"), "--guild", GUILD, "--channel", "<#55>"
    )
    assert added.code == 0, added
    listing = await run_cli("kb", "list", "--guild", GUILD)
    assert listing.out.splitlines()[1].split()[:4] == ["parking.txt", "1", "-", "55"]
    question = ("kb", "search", "where do visitors park bicycles", "--guild", GUILD)
    elsewhere = await run_cli(*question, "--channel", "66")
    assert elsewhere.out == ""
    there = await run_cli(*question, "--channel", "55")
    assert "parking.txt" in there.out
    everywhere = await run_cli(*question)  # an admin's search sees every document
    assert "parking.txt" in everywhere.out


async def test_a_change_of_embedding_model_is_reported_and_re_embedded(
    run_cli: RunCli, docs: Path, db_path: Path, cli_env: pytest.MonkeyPatch
) -> None:
    assert (await run_cli("kb", "add", str(docs), "--guild", GUILD)).code == 0
    question = ("kb", "search", "membership dues treasurer", "--guild", GUILD)
    assert "rules/dues.md" in (await run_cli(*question)).out
    cli_env.setenv("EMBEDDING_MODEL", "mxbai-embed-large")

    listing = await run_cli("kb", "list", "--guild", GUILD)
    assert listing.code == 0, listing
    assert [row.split()[4] for row in listing.out.splitlines()[1:]] == ["2", "1", "1"]
    assert listing.err == (
        "ollacord: 4 passages embedded with another model than mxbai-embed-large "
        "(EMBEDDING_MODEL changed); searches skip them until `ollacord kb reembed`\n"
    )
    assert (await run_cli(*question)).out == ""  # never compared with another model's

    reembedded = await run_cli("kb", "reembed")
    assert reembedded.code == 0, reembedded
    assert reembedded.out == "re-embedded 4 passages with mxbai-embed-large\n"
    assert {model for _, model in chunk_rows(db_path)} == {"mxbai-embed-large"}
    assert "rules/dues.md" in (await run_cli(*question)).out
    again = await run_cli("kb", "reembed", "--guild", GUILD)
    assert again.out == "nothing to re-embed: every passage is embedded with mxbai-embed-large\n"


async def test_progress_is_redrawn_on_a_terminal_and_erased(
    run_cli: RunCli, tmp_path: Path, cli_env: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.md"
    big.write_text(
        "\n\n".join(f"## Part {i}\n\n" + f"Topic {i} sentence. " * 60 for i in range(80))
    )
    terminal = FakeTerminal()
    cli_env.setattr(sys, "stderr", terminal)
    run = await run_cli("kb", "add", str(big), "--guild", GUILD)
    assert run.code == 0, run
    drawn = terminal.getvalue()
    assert "\rollacord: adding big.md: 0/80 passages embedded" in drawn
    assert "\rollacord: adding big.md: 64/80 passages embedded" in drawn
    assert drawn.endswith("\r\x1b[K")  # erased before the outcome is printed
    assert run.out.startswith("added big.md: 80 passages")


async def test_a_file_that_is_not_a_document_is_one_error(run_cli: RunCli, docs: Path) -> None:
    run = await run_cli("kb", "add", str(docs / "logo.png"), "--guild", GUILD)
    line = assert_one_line_error(run)
    assert line == (
        f"ollacord: {docs / 'logo.png'}: `logo.png` is a PNG image, not a document. {KINDS}"
    )


async def test_a_file_too_long_fails_alone_and_the_others_are_added(
    run_cli: RunCli, docs: Path
) -> None:
    (docs / "book.txt").write_text("word " * 210_000)
    run = await run_cli("kb", "add", str(docs), "--guild", GUILD)
    assert run.code == 1, run
    assert run.err_lines == [
        f"ollacord: {docs / 'book.txt'}: `book.txt` is too long for the knowledge base: a "
        "document can have at most 1,000,000 characters of text. Split it into smaller files."
    ]
    assert "added parking.txt" in run.out
    assert run.out.splitlines()[-1] == "3 of 5 files added or up to date, 1 skipped, 1 failed"


async def test_a_missing_embedding_model_stops_the_whole_folder(
    run_cli: RunCli, docs: Path, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("EMBEDDING_MODEL", "ghost-embed")
    run = await run_cli("kb", "add", str(docs), "--guild", GUILD)
    line = assert_one_line_error(run)
    assert "ghost-embed" in line
    assert "added" not in run.out


async def test_failures_are_one_line(run_cli: RunCli, docs: Path, db_path: Path) -> None:
    missing_db = await run_cli("kb", "list", "--guild", GUILD)
    assert "There is no database at" in assert_one_line_error(missing_db)
    assert not exists(db_path)

    assert (await run_cli("kb", "add", str(docs / "parking.txt"), "--guild", GUILD)).code == 0
    unknown = await run_cli("kb", "remove", "nothing.md", "--guild", GUILD)
    assert assert_one_line_error(unknown) == (
        "ollacord: There is no document named `nothing.md` in this server's knowledge base."
    )
    no_file = await run_cli("kb", "add", "nowhere.txt", "--guild", GUILD)
    assert no_file.code == 2 and no_file.err_lines == [
        "ollacord kb add: error: argument PATH: no such file or folder: nowhere.txt"
    ]
    bad_guild = await run_cli("kb", "list", "--guild", "my-server")
    assert bad_guild.code == 2 and bad_guild.err_lines == [
        "ollacord kb list: error: argument --guild: expected a Discord id (digits), got 'my-server'"
    ]
    named_folder = await run_cli("kb", "add", str(docs), "--guild", GUILD, "--name", "x")
    assert named_folder.code == 2
    assert named_folder.err_lines[-1].endswith(
        "--name names a single file, not several or a folder"
    )
