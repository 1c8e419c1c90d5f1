"""Images in questions end to end: /ask and mentions with a picture, vision routing, what the
model receives and what the conversation keeps (and forgets)."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bot.core.images import MAX_IMAGE_SIDE
from tests.e2e.conftest import (
    World,
    ollama_paths,
    private_notes,
    stored_messages,
    wait_private_note,
    world,
)
from tests.e2e.test_ask import finished, footer_of
from tests.emulators.discord_server import InteractionRecord, Message, Upload
from tests.emulators.ollama_models import extended_models
from tests.emulators.ollama_server import RecordedRequest

SESSION = "channel:{}"


@pytest.fixture
async def sees(tmp_path: Path) -> AsyncIterator[World]:
    """gemma3 on the server (not yet anyone's model), VISION_MODEL unset."""
    async with world(tmp_path, ollama_options={"models": extended_models()}) as value:
        yield value


@pytest.fixture
async def stands_in(tmp_path: Path) -> AsyncIterator[World]:
    """llama3.2 (which cannot see) is the channel's model; gemma3 looks at images for it."""
    async with world(
        tmp_path, ollama_options={"models": extended_models()}, VISION_MODEL="gemma3"
    ) as value:
        yield value


def photo(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """An image with some structure (a gradient and shapes), as a phone would upload."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(0, width, max(1, width // 12)):
        draw.ellipse((i, height // 4, i + width // 16, height // 2), fill=(200, 40, i % 255))
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def chats(w: World) -> list[RecordedRequest]:
    return [r for r in w.ollama.requests if r.path == "/api/chat"]


def public_text(rec: InteractionRecord) -> str:
    """What everyone in the channel can see of the reply."""
    shown = [rec.original, *rec.followups]
    return "\n".join(m.content for m in shown if m and not m.ephemeral and not m.deleted)


def bot_messages(w: World) -> list[Message]:
    bot_id = w.discord.bot_user_id
    return [m for m in w.discord.channel_messages(w.channel.id) if m.author_id == bot_id]


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def set_channel_model(w: World, name: str) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="set", user_id=w.admin.id, **w.where, options={"name": name}
    )
    assert "is now this channel's model" in await wait_private_note(rec)


async def ask_with_image(
    w: World, prompt: str, image: Upload, **options: object
) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt, "image": image, **options}
    )


# ----- a vision model answers --------------------------------------------------------------


async def test_a_vision_model_receives_the_image_downscaled(sees: World) -> None:
    w = sees
    await set_channel_model(w, "gemma3")
    upload = Upload("holiday.jpg", photo(4000, 3000))
    messages = await finished(await ask_with_image(w, "What is in this picture?", upload))

    (request,) = chats(w)
    assert request.json is not None and request.json["model"] == "gemma3"
    question = request.messages[-1]
    assert question["role"] == "user" and question["content"] == "What is in this picture?"
    assert len(question["images"]) == 1
    (seen,) = request.images
    # 4000×3000 downscaled to the longer side's limit, its shape kept.
    assert size_of(seen) == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE * 3 // 4)
    # The emulator's vision model says how many images it saw.
    assert messages[0].content.startswith("Echo: What is in this picture? [1 image]")
    footer = footer_of(messages)
    assert footer.startswith("-# gemma3") and "sees images" not in footer
    stored = await stored_messages(w, SESSION.format(w.channel.id), 2)
    assert stored[0]["images"] == [base64.b64decode(i) for i in question["images"]]


async def test_vision_model_stands_in_for_a_model_that_cannot_see(stands_in: World) -> None:
    w = stands_in
    messages = await finished(
        await ask_with_image(w, "Read the sign.", Upload("sign.jpg", photo(800, 600)))
    )
    (request,) = chats(w)
    assert request.json is not None and request.json["model"] == "gemma3"
    assert len(request.images) == 1
    assert messages[0].content.startswith("Echo: Read the sign. [1 image]")
    footer = footer_of(messages)
    assert footer.startswith("-# gemma3") and "sees images for llama3.2" in footer


async def test_without_a_vision_model_the_asker_is_told_privately(sees: World) -> None:
    w = sees
    before = len(w.ollama.requests)
    rec = await ask_with_image(w, "What is this?", Upload("cat.jpg", photo(640, 480)))
    # Told one way or the other: privately, or (the bug) in the public reply.
    await rec.wait_done(lambda r: bool(private_notes(r)) or "⚠️" in public_text(r))
    assert public_text(rec) == ""
    note = "\n".join(private_notes(rec))
    assert "`llama3.2` cannot see images" in note
    assert "/model" in note and "VISION_MODEL" in note
    assert "/api/chat" not in ollama_paths(w.ollama, before)
    assert await w.bot.manager.store.messages(SESSION.format(w.channel.id)) == []


async def test_a_follow_up_without_an_image_still_shows_the_model_the_earlier_one(
    stands_in: World,
) -> None:
    w = stands_in
    await finished(await ask_with_image(w, "What breed?", Upload("dog.jpg", photo(900, 700))))
    await stored_messages(w, SESSION.format(w.channel.id), 2)
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "And its colour?"}
    )
    messages = await finished(rec)

    first, follow_up = chats(w)
    (image,) = first.messages[-1]["images"]
    history = follow_up.messages
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"] == "What breed?" and history[0]["images"] == [image]
    assert "images" not in history[-1]
    # Still the model that can see it, and the footer still says why.
    assert follow_up.json is not None and follow_up.json["model"] == "gemma3"
    assert "sees images for llama3.2" in footer_of(messages)


def database_files(tmp_path: Path) -> list[Path]:
    """The database and its write-ahead log and shared memory, whichever exist."""
    return sorted(p for p in tmp_path.iterdir() if p.name.startswith("bot.db"))


@pytest.mark.sqlite_only  # SQLite's own files
async def test_reset_leaves_no_trace_of_the_image_in_the_database_files(
    sees: World, tmp_path: Path
) -> None:
    w = sees
    await set_channel_model(w, "gemma3")
    await finished(await ask_with_image(w, "Private photo", Upload("me.jpg", photo(1200, 900))))
    await stored_messages(w, SESSION.format(w.channel.id), 2)
    # The bytes as prepared (Pillow re-encodes the upload): what the model saw and the
    # database keeps. A stretch from the middle is compressed image data, found nowhere else.
    (seen,) = chats(w)[0].images
    marker = seen[len(seen) // 2 : len(seen) // 2 + 64]
    assert any(marker in f.read_bytes() for f in database_files(tmp_path))

    rec = await w.discord.invoke_slash("reset", user_id=w.admin.id, **w.where)
    assert "Forgot this channel's conversation (2 messages)" in await wait_private_note(rec)

    assert await w.bot.manager.store.messages(SESSION.format(w.channel.id)) == []
    files = database_files(tmp_path)
    assert [f.name for f in files if marker in f.read_bytes()] == []
    assert any(f.name == "bot.db-wal" for f in files)  # the log was read too, not missing


# ----- mentions -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["what is on this label?", ""])
async def test_a_mention_with_an_image_is_answered_the_same_way(tmp_path: Path, text: str) -> None:
    async with world(
        tmp_path,
        ollama_options={"models": extended_models()},
        MENTION_CHAT="true",
        VISION_MODEL="gemma3",
    ) as w:
        bot_id = w.discord.bot_user_id
        asked = await w.discord.send_user_message(
            w.channel.id,
            w.alice.id,
            text,
            mentions=[bot_id],
            attachments=[Upload("label.png", photo(2000, 500, "PNG"))],
        )
        await w.discord.wait_for(
            lambda: any("\n-# " in m.content for m in bot_messages(w)), timeout=10
        )
        (reply,) = bot_messages(w)
        (request,) = chats(w)
        (seen,) = request.images
        assert size_of(seen) == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE // 4)
        question = request.messages[-1]
        # Only an image: the model is asked to describe it.
        assert question["content"] == (text or "Describe what is attached.")
        assert request.json is not None and request.json["model"] == "gemma3"
        assert reply.reference is not None and int(reply.reference["message_id"]) == asked.id
        assert reply.content.startswith(f"Echo: {question['content']} [1 image]")
        assert "sees images for llama3.2" in reply.content
        stored = await stored_messages(w, SESSION.format(w.channel.id), 2)
        assert stored[0]["images"] == [base64.b64decode(i) for i in question["images"]]


# ----- refusals -----------------------------------------------------------------------------


async def test_an_oversize_image_is_refused_without_downloading_it(stands_in: World) -> None:
    w = stands_in
    upload = Upload("panorama.jpg", photo(300, 200), size=30 * 1024 * 1024)
    rec = await ask_with_image(w, "Look at this.", upload)
    note = await wait_private_note(rec)
    assert "`panorama.jpg` is 30.0 MB; the limit is 20 MB." in note
    (attachment,) = w.discord.attachments_of(rec)
    assert attachment.size == 30 * 1024 * 1024
    assert w.discord.cdn_fetches_of(attachment) == []
    assert "/api/chat" not in ollama_paths(w.ollama)


async def test_a_text_file_labelled_as_an_image_is_refused_clearly(stands_in: World) -> None:
    w = stands_in
    upload = Upload("chart.png", b"quarterly numbers, not a picture\n" * 20, "image/png")
    rec = await ask_with_image(w, "Explain the chart.", upload)
    note = await wait_private_note(rec)
    assert note == "`chart.png` is not a PNG, JPEG, WebP or GIF image."
    await rec.wait_quiet()
    assert public_text(rec) == ""
    assert "/api/chat" not in ollama_paths(w.ollama)
    assert await w.bot.manager.store.messages(SESSION.format(w.channel.id)) == []


async def test_an_image_whose_link_expired_is_asked_for_again(stands_in: World) -> None:
    w = stands_in
    rec = await ask_with_image(w, "And this?", Upload("old.jpg", photo(64, 64), expired=True))
    note = await wait_private_note(rec)
    assert note == (
        "`old.jpg` could not be downloaded from Discord (the link may have expired); "
        "please attach it again."
    )
    assert [f.status for f in w.discord.cdn_fetches] == [404]
    assert "/api/chat" not in ollama_paths(w.ollama)


async def test_a_private_answer_about_an_image_stays_private(stands_in: World) -> None:
    w = stands_in
    answer = "\n\n".join(f"Detail {i}: " + "the picture shows more " * 20 for i in range(10))
    assert len(answer) > 2 * 2000
    w.ollama.set_reply(answer)
    rec = await ask_with_image(
        w, "Describe it in depth.", Upload("scan.jpg", photo(640, 480)), private=True
    )
    messages = await finished(rec)
    assert len(messages) >= 3
    assert rec.ephemeral and all(m.ephemeral for m in messages)
    assert "sees images for llama3.2" in footer_of(messages)
    assert [m for m in bot_messages(w) if not m.ephemeral] == []  # none for everyone
    assert len(chats(w)[0].images) == 1
