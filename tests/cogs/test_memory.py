"""/memory's texts: every note a member has is shown, in messages Discord accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.memory.notes import MAX_NOTE_CHARS, MAX_NOTES_PER_MEMBER
from bot.storage.memory import NoteRecord
from cogs.memory import MAX_MESSAGE_CHARS, choice_name, paged, show_lines

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def notes(count: int, chars: int) -> list[NoteRecord]:
    return [NoteRecord(i, f"{i:03} " + "x" * (chars - 4), NOW) for i in range(1, count + 1)]


def test_the_most_notes_a_member_can_have_are_all_shown_in_pages() -> None:
    full = notes(MAX_NOTES_PER_MEMBER, MAX_NOTE_CHARS)
    pages = paged(show_lines(full, enabled=True))
    assert len(pages) > 1
    assert all(len(page) <= MAX_MESSAGE_CHARS for page in pages)
    shown = "\n".join(pages)
    for number, note in enumerate(full, 1):
        assert f"**{number}.** {note.text}" in shown
    assert shown.splitlines() == show_lines(full, enabled=True)  # nothing lost or split


def test_no_notes_and_notes_kept_while_off() -> None:
    assert show_lines([], enabled=False)[0].startswith(
        "🧠 The bot has no notes about you here. Members' notes are off here"
    )
    kept = show_lines(notes(1, 20), enabled=False)
    assert kept[1] == "**1.** 001 xxxxxxxxxxxxxxxx"
    assert "kept, unused, until you or an admin delete them" in kept[2]


def test_a_long_note_is_cut_in_its_completion() -> None:
    assert choice_name(3, "Prefers Python") == "3. Prefers Python"
    long = choice_name(12, "y" * MAX_NOTE_CHARS)
    assert len(long) == 100 and long.startswith("12. yyy") and long.endswith("…")
