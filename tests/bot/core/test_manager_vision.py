"""Images in questions through the request manager: a model that can see them gets them, one
that cannot hands the turn to VISION_MODEL, and a conversation's images follow it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bot.core.errors import InvalidRequestError, VisionUnavailableError
from bot.core.manager import OllamaRequestManager
from tests.conftest import ManagerFactory
from tests.emulators.ollama_models import extended_models
from tests.emulators.ollama_server import OllamaEmulator


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator(extended_models()) as emu:  # with gemma3, which can see
        yield emu


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, "PNG")
    return buffer.getvalue()


def chats(emu: OllamaEmulator) -> list:
    return [r for r in emu.requests if r.path == "/api/chat"]


async def started(make_manager: ManagerFactory, **options: object) -> OllamaRequestManager:
    manager = make_manager(**options)
    await manager.start()
    return manager


async def test_a_vision_model_gets_the_image(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager)
    result = await manager.ask(prompt="what is this?", model="gemma3", images=[png("red")])
    assert chats(ollama_emu)[-1].images == [png("red")]
    assert result.model.startswith("gemma3") and result.vision_from is None


async def test_a_model_that_cannot_see_hands_the_turn_to_the_vision_model(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager, vision_model="gemma3")
    result = await manager.ask(prompt="what is this?", session_id="s", images=[png("red")])
    request = chats(ollama_emu)[-1]
    assert request.json is not None and request.json["model"].startswith("gemma3")
    assert request.images == [png("red")]
    assert result.vision_from == "llama3.2"

    # A follow-up without an image still shows the model the earlier one.
    await manager.ask(prompt="and its colour?", session_id="s")
    follow_up = chats(ollama_emu)[-1]
    assert follow_up.json is not None and follow_up.json["model"].startswith("gemma3")
    assert follow_up.images == [png("red")]


async def test_without_a_vision_model_the_question_is_refused_and_nothing_stored(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager)
    with pytest.raises(VisionUnavailableError) as refused:
        await manager.ask(prompt="what is this?", session_id="s", images=[png("red")])
    assert refused.value.model == "llama3.2" and refused.value.vision_model is None
    assert chats(ollama_emu) == []
    assert await manager.store.messages("s") == []


async def test_a_missing_vision_model_is_named(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager, vision_model="llava")  # not on the server
    with pytest.raises(VisionUnavailableError) as refused:
        await manager.ask(prompt="what is this?", images=[png("red")])
    assert refused.value.vision_model == "llava"


async def test_earlier_images_are_left_out_for_a_model_that_cannot_see_them(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager)
    await manager.ask(prompt="look", session_id="s", model="gemma3", images=[png("blue")])
    await manager.ask(prompt="now without images", session_id="s")  # llama3.2: no vision
    request = chats(ollama_emu)[-1]
    assert request.json is not None and request.json["model"].startswith("llama3.2")
    assert request.images == []
    assert any(m["content"] == "look" for m in request.messages)  # the text stays


async def test_too_many_images_are_refused_before_asking(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = await started(make_manager)
    with pytest.raises(InvalidRequestError, match="At most 4 images"):
        await manager.ask(prompt="look", model="gemma3", images=[png("red")] * 5)
    assert chats(ollama_emu) == []
