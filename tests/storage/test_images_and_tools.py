"""What a conversation keeps beyond text: images (within a budget), tool calls and results,
per-channel preset, keep-alive and tools; and that deleting a conversation really deletes."""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.history import ChatMessage
from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.turns import MAX_STORED_IMAGES


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SessionStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield SessionStore(create_sessionmaker(engine))
    await engine.dispose()


def image(marker: bytes) -> bytes:
    """A recognisable image payload."""
    return marker * 64 + os.urandom(16)


def files_containing(folder: Path, marker: bytes) -> list[str]:
    return sorted(f.name for f in folder.iterdir() if marker in f.read_bytes())


def asked(text: str, *images: bytes | str) -> ChatMessage:
    message: ChatMessage = {"role": "user", "content": text}
    if images:
        message["images"] = list(images)
    return message


ANSWER: ChatMessage = {"role": "assistant", "content": "seen"}


async def test_images_come_back_with_their_message(store: SessionStore) -> None:
    first, second = image(b"CAT-"), image(b"DOG-")
    await store.append_turn("s", [asked("what is this?", first, second), ANSWER])
    await store.append_turn("s", [asked("and now?"), ANSWER])

    messages = await store.messages("s")
    assert messages[0]["images"] == [first, second]
    assert "images" not in messages[2]
    _, history = await store.load_context("s", 10)
    assert history[0]["images"] == [first, second]


async def test_only_the_newest_images_are_kept(store: SessionStore) -> None:
    sent = [image(f"IMG{i}-".encode()) for i in range(MAX_STORED_IMAGES + 2)]
    for picture in sent:
        await store.append_turn("s", [asked("look", picture), ANSWER])
    await store.append_turn("other", [asked("mine", image(b"OTHER-")), ANSWER])

    kept = [m["images"][0] for m in await store.messages("s") if "images" in m]
    assert kept == sent[-MAX_STORED_IMAGES:]
    assert len([m for m in await store.messages("other") if "images" in m]) == 1


async def test_tool_calls_and_results_are_stored_in_order(store: SessionStore) -> None:
    call = {"function": {"name": "calculator", "arguments": {"expression": "2+2"}}}
    turn: list[ChatMessage] = [
        asked("what is 2+2?"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "4", "tool_name": "calculator"},
        {"role": "assistant", "content": "It is 4."},
    ]
    await store.append_turn("s", turn)
    assert await store.messages("s") == turn


async def test_search_finds_turns_by_text(store: SessionStore) -> None:
    await store.append_turn("s", [asked("We chose PostgreSQL for prod"), ANSWER])
    await store.append_turn("s", [asked("lunch?"), {"role": "assistant", "content": "pizza"}])
    await store.append_turn("t", [asked("postgresql elsewhere"), ANSWER])

    found = await store.search_messages("s", "postgresql", 5)
    assert [m["content"] for m in found] == ["We chose PostgreSQL for prod"]
    assert await store.search_messages("s", "100%_", 5) == []  # wildcards are literal


async def test_preset_keep_alive_and_tools_settings(store: SessionStore) -> None:
    settings, _ = await store.update_settings(
        "channel:1", preset="creative", keep_alive="10m", tools=["calculator"]
    )
    assert (settings.preset, settings.keep_alive, settings.tools) == (
        "creative", "10m", ("calculator",),
    )  # fmt: skip
    settings, _ = await store.update_settings("channel:1", tools=None)
    assert settings.tools is None and settings.preset == "creative"
    assert (await store.settings_of(["channel:1"]))["channel:1"].keep_alive == "10m"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("forget", ["clear", "delete", "reset"])
async def test_forgotten_images_are_gone_from_the_database_files(
    store: SessionStore, tmp_path: Path, forget: str
) -> None:
    marker = b"SECRET-PIXELS-" * 8
    picture = base64.b64encode(marker * 40).decode()
    await store.append_turn("s", [asked("private photo", picture), ANSWER])
    # As after a while in production: the image has reached the main file too.
    with contextlib.closing(sqlite3.connect(tmp_path / "ollacord.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await store.append_turn("s", [asked("and this?", picture), ANSWER])  # and the log
    assert files_containing(tmp_path, marker) == ["ollacord.db", "ollacord.db-wal"]

    if forget == "clear":
        await store.clear_messages("s")
    elif forget == "delete":
        await store.delete("s")
    else:
        await store.reset("s")

    assert await store.messages("s") == []
    assert files_containing(tmp_path, marker) == []
