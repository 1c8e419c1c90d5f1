"""`ollacord chat` with what /ask takes besides the question: --format and --schema (the
answer printed as indented JSON), --image, --file and --preset; against the Ollama emulator
with a vision model in its catalogue (gemma3, beside the default three)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.bot.cli.test_chat import chat_bodies
from tests.emulators.ollama_models import extended_models
from tests.emulators.ollama_server import OllamaEmulator

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    """The emulator with gemma3, a vision model, beside the default catalogue."""
    async with OllamaEmulator(extended_models()) as emu:
        yield emu


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def png(path: Path, size: tuple[int, int] = (40, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return str(path)


def assert_usage_line(run: Any, starts: str) -> None:
    """A bad argument: exit 2 and argparse's one line, no usage block, no traceback."""
    assert run.code == 2, run
    assert len(run.err_lines) == 1, run.err
    assert run.err_lines[0].startswith(f"ollacord chat: error: {starts}"), run.err
    assert "Traceback" not in run.err + run.out


# --- structured answers ----------------------------------------------------------------


async def test_format_json_prints_the_parsed_answer_indented(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply('{"answer": 42, "unit": null}')
    run = await run_cli("chat", "--format", "json", "--stream", "the answer?")
    assert run.code == 0, run
    assert run.out == '{\n  "answer": 42,\n  "unit": null\n}\n'  # whole, never streamed
    (body,) = chat_bodies(ollama_emu)
    assert body["format"] == "json"


async def test_schema_file_is_sent_and_the_answer_follows_it(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    ollama_emu.set_reply('{"city": "Paris", "population": 2102650}')
    schema = write_json(tmp_path / "city.json", CITY)
    run = await run_cli("chat", "--schema", schema, "capital of France?")
    assert run.code == 0, run
    assert json.loads(run.out) == {"city": "Paris", "population": 2102650}
    assert run.out.startswith('{\n  "city": "Paris",\n')
    (body,) = chat_bodies(ollama_emu)
    assert body["format"] == CITY

    as_json = await run_cli("chat", "--json", "--format", "json", "--schema", schema, "again")
    assert as_json.code == 0, as_json
    document = json.loads(as_json.out)
    assert document["parsed"] == {"city": "Paris", "population": 2102650}
    assert json.loads(document["content"]) == document["parsed"]
    assert chat_bodies(ollama_emu)[-1]["format"] == CITY  # the schema wins over "json"


async def test_an_answer_that_misses_its_schema_twice_is_one_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    ollama_emu.violate_schema(2, mode="missing")
    schema = write_json(tmp_path / "city.json", CITY)
    line = assert_one_line_error(await run_cli("chat", "--schema", schema, "capital?"))
    assert "did not match the requested format" in line
    assert "'city' is a required property. Try again, or simplify the schema (--schema" in line
    assert len(chat_bodies(ollama_emu)) == 2  # asked again once


async def test_an_answer_that_misses_its_schema_once_is_asked_again(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    ollama_emu.violate_schema(1, mode="type")
    ollama_emu.set_reply('{"city": "Paris", "population": 2102650}')
    schema = write_json(tmp_path / "city.json", CITY)
    run = await run_cli("chat", "--schema", schema, "capital?")
    assert run.code == 0, run
    assert json.loads(run.out)["population"] == 2102650
    assert run.err == ""
    assert len(chat_bodies(ollama_emu)) == 2


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("{not json", "{path} is not valid JSON"),
        ('["a list"]', "{path} is not a JSON object"),
        ('{"type": "nonsense"}', "{path}: The JSON schema is invalid"),
        ('{"type": "string", "pattern": "(a+)+$"}', "{path}: The JSON schema uses a regular"),
        (b"\xff\xfe{\x00}\x00", "{path} is not UTF-8 text"),
    ],
    ids=["missing", "not-json", "not-object", "invalid-schema", "pattern", "not-utf8"],
)
async def test_a_bad_schema_file_is_one_usage_line(
    run_cli: RunCli,
    ollama_emu: OllamaEmulator,
    tmp_path: Path,
    content: str | bytes | None,
    says: str,
) -> None:
    path = tmp_path / "schema.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    run = await run_cli("chat", "--schema", str(path), "hello")
    assert_usage_line(run, "argument --schema: " + says.format(path=path))
    assert not chat_bodies(ollama_emu)


async def test_an_invalid_inline_schema_is_a_usage_line_too(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("chat", "--format", '{"type": 12}', "hello")
    assert_usage_line(run, "argument --format: the schema: The JSON schema is invalid")
    assert not chat_bodies(ollama_emu)


async def test_a_schema_given_twice_is_refused(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    schema = write_json(tmp_path / "city.json", CITY)
    run = await run_cli("chat", "--schema", schema, "--format", json.dumps(CITY), "hello")
    assert run.code == 2, run
    assert "give the schema once" in run.err_lines[-1]
    assert not chat_bodies(ollama_emu)


# --- images --------------------------------------------------------------------------------


async def test_an_image_reaches_a_vision_model(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    picture = png(tmp_path / "red.png")
    run = await run_cli("chat", "--model", "gemma3", "--image", picture, "what colour?")
    assert run.code == 0, run
    assert run.out == "Echo: what colour? [1 image]\n"
    (request,) = [r for r in ollama_emu.requests if r.path == "/api/chat"]
    (sent,) = request.images
    with Image.open(io.BytesIO(sent)) as image:  # prepared: re-encoded, same picture
        assert image.size == (40, 30)
        assert image.getpixel((0, 0)) == (200, 30, 30)


async def test_images_for_a_blind_model_go_to_the_vision_model(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    cli_env.setenv("VISION_MODEL", "gemma3")
    first, second = png(tmp_path / "a.png"), png(tmp_path / "b.png", (10, 10))
    run = await run_cli("chat", "--json", "--image", first, "--image", second, "compare")
    assert run.code == 0, run
    document = json.loads(run.out)
    assert document["content"] == "Echo: compare [2 images]"
    assert document["model"].startswith("gemma3")
    assert document["vision_from"] == "llama3.2"
    assert "`llama3.2` cannot see images" in run.err
    assert chat_bodies(ollama_emu)[-1]["model"].startswith("gemma3")


async def test_an_image_without_a_vision_model_names_the_flag(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    run = await run_cli("chat", "--image", png(tmp_path / "red.png"), "what is it?")
    line = assert_one_line_error(run)
    assert "`llama3.2` cannot see images" in line
    assert "--model with a vision model" in line
    assert not chat_bodies(ollama_emu)


async def test_a_file_that_is_not_an_image_is_one_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    line = assert_one_line_error(await run_cli("chat", "--image", str(text), "what is it?"))
    assert "`notes.png` is not a PNG, JPEG, WebP or GIF image" in line
    assert not chat_bodies(ollama_emu)


async def test_a_missing_image_is_one_usage_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.png"
    run = await run_cli("chat", "--image", str(missing), "hello")
    assert_usage_line(run, f"argument --image: cannot read {missing}")
    assert not chat_bodies(ollama_emu)


# --- files ---------------------------------------------------------------------------------


async def test_a_file_is_quoted_before_the_question(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Buy milk.\nCall Ada at 3.\n")
    code = tmp_path / "hello.py"
    code.write_text("print('hi')\n")
    run = await run_cli("chat", "--file", str(notes), "--file", str(code), "what is on it?")
    assert run.code == 0, run
    (body,) = chat_bodies(ollama_emu)
    assert body["messages"][-1]["content"] == (
        "File `notes.txt`:\n```\nBuy milk.\nCall Ada at 3.\n```\n\n"
        "File `hello.py`:\n```py\nprint('hi')\n```\n\n"
        "what is on it?"
    )


async def test_a_file_too_long_for_the_window_is_refused_before_asking(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    cli_env.setenv("DEFAULT_NUM_CTX", "512")
    long = tmp_path / "long.md"
    long.write_text("All work and no play. " * 800)
    line = assert_one_line_error(await run_cli("chat", "--file", str(long), "summarize"))
    assert "`long.md` is too long for the model's context window" in line
    assert "--num-ctx" in line
    assert not chat_bodies(ollama_emu)


async def test_a_binary_file_is_one_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    picture = png(tmp_path / "photo.png")
    line = assert_one_line_error(await run_cli("chat", "--file", picture, "read it"))
    assert "`photo.png` is a PNG image, not a document" in line
    assert not chat_bodies(ollama_emu)


# --- presets -------------------------------------------------------------------------------


async def test_a_preset_sends_its_options_and_flags_still_win(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("chat", "--preset", "precise", "hello")
    assert run.code == 0, run
    options = chat_bodies(ollama_emu)[-1]["options"]
    assert (options["temperature"], options["top_p"], options["num_predict"]) == (0.3, 0.7, 2048)

    run = await run_cli("chat", "--preset", "Precise", "--temperature", "1.1", "hello")
    assert run.code == 0, run
    options = chat_bodies(ollama_emu)[-1]["options"]
    assert (options["temperature"], options["top_p"]) == (1.1, 0.7)


async def test_an_unknown_preset_is_one_usage_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("chat", "--preset", "turbo", "hello")
    assert_usage_line(run, "argument --preset: There is no preset named 'turbo'")
    assert "precise" in run.err
    assert not chat_bodies(ollama_emu)
