"""The conversation export both front ends render: Markdown, JSON, images, the size limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.core.history import ChatMessage
from bot.presentation.export import (
    Omitted,
    document_text,
    fitted,
    markdown_transcript,
    session_document,
)
from bot.storage import SessionRecord, SessionSettings

WHEN = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
RECORD = SessionRecord(
    id="channel:1",
    settings=SessionSettings(system_prompt="Be brief."),
    created_at=WHEN,
    updated_at=WHEN,
    message_count=4,
)


def iso(when: datetime) -> str:
    return when.isoformat()


def turns(count: int) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for n in range(count):
        messages += [
            {"role": "user", "content": f"question {n} " + "x" * 100},
            {"role": "assistant", "content": f"answer {n} " + "y" * 100},
        ]
    return messages


def markdown(kept: Sequence[ChatMessage], left_out: int) -> bytes:
    text = markdown_transcript(RECORD, kept, time_text=iso, omitted=Omitted(messages=left_out))
    return text.encode()


def test_a_conversation_that_fits_is_whole() -> None:
    messages = turns(3)
    result = fitted(messages, markdown, 10_000)
    assert result is not None
    data, left_out = result
    assert left_out == 0 and data == markdown(messages, 0)
    assert b"left out" not in data


def test_a_long_conversation_loses_its_oldest_turns_and_says_so() -> None:
    messages = turns(20)
    # Room for 5 turns and the answer before them, which goes with its question.
    limit = len(markdown(messages[-10:], 10)) + 140
    result = fitted(messages, markdown, limit)
    assert result is not None
    data, left_out = result
    assert left_out == 30 and len(data) <= limit
    text = data.decode()
    assert "- left out: the 30 oldest messages (the file size limit)" in text
    assert "answer 14 " not in text and text.index("question 15 ") < text.index("answer 15 ")


def test_nothing_is_sent_when_not_even_the_newest_message_fits() -> None:
    assert fitted(turns(2), markdown, 100) is None


def test_images_are_embedded_for_the_cli_and_counted_for_a_file() -> None:
    messages: list[ChatMessage] = [
        {"role": "user", "content": "look", "images": [b"\x89PNG", b"GIF8"]},
        {"role": "assistant", "content": "two pictures"},
    ]
    whole = session_document(RECORD, messages, max_length=50, max_tokens=None)
    assert whole["messages"][0]["images"] == ["iVBORw==", "R0lGOA=="]
    assert "omitted_images" not in whole
    counted = session_document(
        RECORD, messages, max_length=50, max_tokens=None, omitted=Omitted(images=2)
    )
    assert counted["messages"][0] == {"role": "user", "content": "look", "image_count": 2}
    assert counted["omitted_images"] == 2 and counted["omitted_messages"] == 0
    assert json.loads(document_text(counted)) == counted
    text = markdown_transcript(
        RECORD, messages, time_text=iso, model="llava", omitted=Omitted(images=2)
    )
    assert "- model: llava" in text and "- images left out: 2" in text
    assert "look\n*(2 images left out)*" in text
    assert "images left out" not in markdown_transcript(RECORD, messages, time_text=iso)
