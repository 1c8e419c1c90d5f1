"""Generation options from the command line: `chat` flags, and `sessions set|show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bot.cli.conftest import RunCli, assert_one_line_error, exists
from tests.bot.cli.test_chat import chat_bodies
from tests.emulators.ollama_server import OllamaEmulator

FLAGS = ["--temperature", "0.3", "--top-p", "0.8", "--seed", "42", "--num-predict", "64"]
CHOSEN = {"temperature": 0.3, "top_p": 0.8, "seed": 42, "num_predict": 64}


def last_options(emu: OllamaEmulator) -> dict[str, Any]:
    return chat_bodies(emu)[-1].get("options") or {}


async def test_chat_sends_the_options_given_and_only_those(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("chat", *FLAGS, "--num-ctx", "4096", "hello")
    assert run.code == 0, run
    assert last_options(ollama_emu) == {**CHOSEN, "num_ctx": 4096}

    assert (await run_cli("chat", "hello")).code == 0
    sent = last_options(ollama_emu)
    assert not set(sent) & set(CHOSEN), sent  # the model's own values apply


@pytest.mark.parametrize("kind", ["json", "inline", "file"])
async def test_chat_format(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path, kind: str
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    value = {
        "json": "json",
        "inline": json.dumps(schema),
        "file": str(tmp_path / "schema.json"),
    }[kind]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    ollama_emu.set_reply('{"city": "Paris"}')
    run = await run_cli("chat", "--format", value, "capital of France?")
    assert run.code == 0, run
    assert run.out == '{\n  "city": "Paris"\n}\n'  # the parsed answer, indented
    assert chat_bodies(ollama_emu)[-1]["format"] == ("json" if kind == "json" else schema)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--temperature", "2.5"], "argument --temperature: temperature must be between 0 and 2"),
        (["--top-p", "-0.1"], "argument --top-p: top_p must be between 0 and 1"),
        (["--num-ctx", "100"], "argument --num-ctx: num_ctx must be between 256 and"),
        (["--num-predict", "-3"], "argument --num-predict: num_predict must be between -2 and"),
        (["--temperature", "nan"], "argument --temperature: temperature must be between"),
        (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
        (["--top-p", "high"], "argument --top-p: expected a number, got 'high'"),
        (["--format", "[1]"], 'argument --format: expected "json", a JSON schema or'),
        (["--format", "{not json"], "argument --format: the schema is not valid JSON"),
        (["--format", '["a list"]'], 'argument --format: expected "json"'),
    ],
)
async def test_bad_values_are_one_usage_line(
    run_cli: RunCli, ollama_emu: OllamaEmulator, argv: list[str], says: str
) -> None:
    run = await run_cli("chat", *argv, "hello")
    assert run.code == 2
    assert run.err_lines == [run.err_lines[0]], run.err  # one line, no usage block
    assert run.err_lines[0].startswith(f"ollacord chat: error: {says}"), run.err
    assert "Traceback" not in run.err
    assert not chat_bodies(ollama_emu)


async def test_sessions_set_stores_what_later_questions_use(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli(
        "sessions", "set", "desk", *FLAGS, "--num-ctx", "8192", "--system", "Be brief."
    )
    assert run.code == 0, run
    assert run.out.splitlines()[0] == "created session desk"

    assert (await run_cli("chat", "-s", "desk", "hello")).code == 0
    body = chat_bodies(ollama_emu)[-1]
    assert body["options"] == {**CHOSEN, "num_ctx": 8192}
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}

    # A flag on one question wins for that question only.
    assert (await run_cli("chat", "-s", "desk", "--temperature", "1.5", "again")).code == 0
    assert last_options(ollama_emu)["temperature"] == 1.5
    assert (await run_cli("chat", "-s", "desk", "and again")).code == 0
    assert last_options(ollama_emu)["temperature"] == 0.3


async def test_sessions_set_changes_only_what_is_given(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    assert (await run_cli("sessions", "set", "desk", *FLAGS, "--system", "Be brief.")).code == 0
    run = await run_cli(
        "sessions", "set", "desk", "--unset", "temperature", "--unset", "system", "-m", "qwen3"
    )
    assert run.code == 0, run
    assert run.out.splitlines()[0] == "updated session desk"

    shown = await run_cli("sessions", "show", "desk")
    assert shown.code == 0, shown
    fields = dict(line.split(":", 1) for line in shown.out.splitlines())
    assert fields["model"].strip() == "qwen3"
    assert fields["system prompt"].strip() == "- (none)"
    assert fields["options"].strip() == "top_p=0.8, num_predict=64, seed=42"
    assert fields["messages"].strip() == "0"

    assert (await run_cli("chat", "-s", "desk", "hello")).code == 0
    body = chat_bodies(ollama_emu)[-1]
    assert body["model"] == "qwen3"
    assert body["messages"][0]["role"] == "user"
    assert "temperature" not in body["options"]

    run = await run_cli("sessions", "set", "desk", "--clear-options", "--num-ctx", "2048")
    assert run.code == 0, run
    assert "options:       num_ctx=2048" in run.out
    assert (await run_cli("chat", "-s", "desk", "hello")).code == 0
    assert not set(last_options(ollama_emu)) & set(CHOSEN)


async def test_sessions_set_refuses_bad_values_and_stores_nothing(
    run_cli: RunCli, db_path: Path
) -> None:
    run = await run_cli("sessions", "set", "desk", "--temperature", "9")
    assert run.code == 2
    assert run.err == (
        "ollacord sessions set: error: argument --temperature: "
        "temperature must be between 0 and 2.\n"
    )
    assert not exists(db_path)
    unknown = await run_cli("sessions", "set", "desk", "--unset", "warmth")
    assert unknown.code == 2 and len(unknown.err_lines) == 1
    assert "unknown setting warmth" in unknown.err
    nothing = await run_cli("sessions", "set", "desk")
    assert nothing.code == 2 and "nothing to change" in nothing.err


async def test_sessions_show_unknown_session(run_cli: RunCli) -> None:
    assert (await run_cli("sessions", "set", "desk", "--seed", "1")).code == 0
    line = assert_one_line_error(await run_cli("sessions", "show", "nope"))
    assert "no session `nope`" in line
