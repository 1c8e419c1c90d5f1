"""Images in the Ollama emulator: decoding, vision and its absence, prompt tokens."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.emulators import ollama_models as catalogue
from tests.emulators.ollama_images import ImageError, go_b64decode
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24  # the signature is all the emulator looks at
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 12


@pytest.fixture
async def emu() -> AsyncIterator[OllamaEmulator]:
    # Overrides conftest's: the default catalogue has no model that can see.
    async with OllamaEmulator(catalogue.extended_models()) as server:
        yield server


def look(*images: bytes, text: str = "What is this?") -> list[dict[str, object]]:
    return [{"role": "user", "content": text, "images": list(images)}]


@pytest.mark.parametrize(
    ("text", "decoded"),
    [("", b""), ("aGk=", b"hi"), ("aGVsbG8=", b"hello"), ("aGVs\r\nbG8=\n", b"hello")],
)
def test_go_base64_decodes_what_go_decodes(text: str, decoded: bytes) -> None:
    assert go_b64decode(text) == decoded


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("aGk", 0),  # unpadded: the short quantum is corrupt from its start
        ("aGVsbG8", 4),
        ("aGk=!", 4),  # trailing garbage after the padding
        ("aG=k", 2),  # "=" where "==" was due
        ("a===", 1),
        ("aGk h", 3),
        ("aGVsbG8=aGk=", 8),
    ],
)
def test_go_base64_fails_where_go_fails(text: str, offset: int) -> None:
    with pytest.raises(ImageError) as caught:
        go_b64decode(text)
    assert str(caught.value) == f"illegal base64 data at input byte {offset}"


async def test_a_vision_model_sees_the_images_and_pays_for_them(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    plain = await client.chat("gemma3", look())
    seen = await client.chat("gemma3", look(PNG, JPEG))
    assert seen.message.content == "Echo: What is this? [2 images]"
    # 256 prompt tokens per image for gemma3 (its mm_tokens_per_image).
    assert (seen.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) == 2 * 256
    assert emu.requests[-1].images == [PNG, JPEG]
    assert emu.requests[-2].images == []

    generated = await client.generate("gemma3", "Describe", images=[PNG])
    assert generated.response == "Echo: Describe [1 image]"
    assert emu.requests[-1].images == [PNG]


async def test_a_model_without_vision_ignores_images_as_0_12_6_does(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    plain = await client.chat("llama3.2", look())
    blind = await client.chat("llama3.2", look(PNG, b"not even an image"))
    assert blind.message.content == "Echo: What is this?"
    # Only the "[img-0][img-1]" tags chatPrompt puts in front of the text, read as text:
    # 27 characters instead of 13, 7 tokens instead of 4.
    assert (blind.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) == 3
    assert emu.requests[-1].images == [PNG, b"not even an image"]


async def test_a_vision_architecture_without_its_weights_refuses() -> None:
    text_only = EmulatedModel("gemma3-text", family="gemma3", images_without_vision="refuse")
    async with (
        OllamaEmulator([text_only]) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat("gemma3-text", look(PNG))
        assert (await client.chat("gemma3-text", look())).message.content == "Echo: What is this?"
    assert caught.value.status_code == 500
    assert caught.value.error == (
        "Failed to create new sequence: failed to process inputs: "
        "this model is missing data required for image input"
    )


async def test_bytes_that_are_no_image_fail_in_the_runner(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat("gemma3", look(b"GIF89a is not registered"))
    assert caught.value.status_code == 500
    assert caught.value.error.endswith("failed to process inputs: image: unknown format")


async def test_bad_base64_is_a_400_before_the_model_is_looked_up(raw: httpx.AsyncClient) -> None:
    for model in ("gemma3", "no-such-model"):
        body = {"model": model, "messages": look(), "stream": False}
        body["messages"][0]["images"] = ["aGVsbG8=", "aGk h"]  # type: ignore[index]
        response = await raw.post("/api/chat", json=body)
        assert (response.status_code, response.json()) == (
            400,
            {"error": "illegal base64 data at input byte 3"},
        )
    generate = {"model": "gemma3", "prompt": "hi", "images": ["aGk=!"]}
    response = await raw.post("/api/generate", json=generate)
    assert response.json() == {"error": "illegal base64 data at input byte 4"}


async def test_python_base64_that_go_refuses_is_refused(client: ollama.AsyncClient) -> None:
    lax = "aGk=!"  # Python's b64decode skips the "!", so the client sends it as it is
    assert base64.b64decode(lax) == b"hi"
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat("gemma3", [{"role": "user", "content": "x", "images": [lax]}])
    assert (caught.value.status_code, caught.value.error) == (
        400,
        "illegal base64 data at input byte 4",
    )


async def test_images_alone_do_not_make_a_prompt(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    # GenerateHandler only loads the model when the prompt is empty, images or not.
    loaded = await client.generate("gemma3", "", images=[PNG])
    assert loaded.done_reason == "load"


async def test_a_vision_model_runs_with_at_least_2048_tokens(client: ollama.AsyncClient) -> None:
    await client.chat("gemma3", look(PNG), options={"num_ctx": 1024})
    (running,) = (await client.ps()).models
    assert running.model_dump().get("context_length") == 2048


async def test_old_images_leave_with_their_messages(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    history = [*look(PNG, text="x" * 20_000), {"role": "assistant", "content": "A picture."}]
    answer = await client.chat("gemma3", [*history, *look(JPEG, text="And this?")])
    assert answer.message.content == "Echo: And this? [1 image]"
    assert emu.truncations and emu.requests[-1].images == [PNG, JPEG]  # what was sent
