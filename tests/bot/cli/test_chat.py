"""`ollacord chat` against the Ollama emulator."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bot import ConversationHistory
from tests.bot.cli.conftest import FakeTerminal, RunCli, assert_one_line_error, exists
from tests.emulators.ollama_server import OllamaEmulator


def chat_bodies(emu: OllamaEmulator) -> list[dict[str, Any]]:
    return [r.json or {} for r in emu.requests if r.path == "/api/chat"]


class RecordingStdout(io.StringIO):
    """Keeps every write(), to tell an answer printed in pieces from one printed at once."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


async def test_chat_prints_the_answer(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    ollama_emu.set_reply("Paris is the capital of France.")
    run = await run_cli("chat", "--no-stream", "What is the capital of France?")
    assert run.code == 0, run
    assert run.out == "Paris is the capital of France.\n"
    assert run.err == ""
    (body,) = chat_bodies(ollama_emu)
    assert body["model"] == "llama3.2"
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize(("flag", "pieces"), [("--stream", 4), ("--no-stream", 1)])
async def test_stream_prints_chunks_as_they_arrive(
    run_cli: RunCli,
    ollama_emu: OllamaEmulator,
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    pieces: int,
) -> None:
    ollama_emu.set_reply("one two three four")
    stdout = RecordingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    run = await run_cli("chat", flag, "count")
    assert run.code == 0, run
    assert stdout.getvalue() == "one two three four\n"
    answer_writes = [w for w in stdout.writes if w.strip()]
    assert len(answer_writes) == pieces


async def test_json_has_the_answer_and_figures(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    ollama_emu.set_reply("Forty-two.")
    run = await run_cli("chat", "--json", "--stream", "meaning of life?")
    assert run.code == 0, run
    document = json.loads(run.out)  # one object, nothing streamed before it
    assert document["content"] == "Forty-two."
    assert document["model"] == "llama3.2"
    assert document["done_reason"] == "stop"
    assert document["fallback_from"] is None
    assert document["tokens"]["prompt"] > 0 and document["tokens"]["completion"] > 0
    assert document["durations"]["total"] > 0
    assert set(document["durations"]) == {"total", "load", "prompt_eval", "eval"}


async def test_fallback_model_is_reported(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    cli_env.setenv("FALLBACK_MODELS", "qwen3")
    run = await run_cli("chat", "--json", "--model", "ghost", "hello")
    assert run.code == 0, run
    document = json.loads(run.out)
    assert document["fallback_from"] == "ghost"
    assert document["model"].startswith("qwen3")
    assert "`ghost` is not available; using `qwen3`" in run.err


async def test_session_keeps_history_and_is_exported(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    assert (await run_cli("chat", "--session", "demo", "first question")).code == 0
    assert (await run_cli("chat", "--stream", "-s", "demo", "second question")).code == 0
    second = chat_bodies(ollama_emu)[-1]
    assert [m["content"] for m in second["messages"]] == [
        "first question",
        "Echo: first question",
        "second question",
    ]

    listing = await run_cli("sessions", "list")
    assert listing.code == 0, listing
    header, row = listing.out.splitlines()
    assert header.split() == ["ID", "MESSAGES", "UPDATED"]
    assert row.split()[:2] == ["demo", "4"]

    markdown = await run_cli("sessions", "export", "demo")
    assert markdown.code == 0, markdown
    assert markdown.out.startswith("# Session demo\n")
    transcript = markdown.out[markdown.out.index("## User") :]
    assert transcript == (
        "## User\n\nfirst question\n\n## Assistant\n\nEcho: first question\n\n"
        "## User\n\nsecond question\n\n## Assistant\n\nEcho: second question\n"
    )

    exported = await run_cli("sessions", "export", "demo", "--format", "json")
    assert exported.code == 0, exported
    document = json.loads(exported.out)
    assert document["session_id"] == "demo"
    assert len(document["messages"]) == 4
    history = ConversationHistory.from_dict(document)
    assert history.messages[-1] == {"role": "assistant", "content": "Echo: second question"}


async def test_without_session_nothing_is_stored(
    run_cli: RunCli, ollama_emu: OllamaEmulator, db_path: Path
) -> None:
    assert (await run_cli("chat", "one-off")).code == 0
    assert (await run_cli("chat", "another")).code == 0
    assert [len(b["messages"]) for b in chat_bodies(ollama_emu)] == [1, 1]  # no history
    assert not exists(db_path)


async def test_system_prompt_reaches_ollama(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    run = await run_cli("chat", "--system", "Answer like a pirate.", "hello")
    assert run.code == 0, run
    (body,) = chat_bodies(ollama_emu)
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}


@pytest.mark.parametrize("argv", [["chat", "-"], ["chat"]])
async def test_prompt_from_stdin(
    run_cli: RunCli, ollama_emu: OllamaEmulator, argv: list[str]
) -> None:
    run = await run_cli(*argv, stdin="a question from a pipe\n")
    assert run.code == 0, run
    assert run.out == "Echo: a question from a pipe\n"


async def test_no_prompt_on_a_terminal_is_a_usage_error(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    cli_env.setattr(sys, "stdin", FakeTerminal())
    run = await run_cli("chat")
    assert run.code == 2
    assert run.err.startswith("usage: ollacord chat")
    assert "give a prompt" in run.err
    assert not chat_bodies(ollama_emu)


async def test_empty_prompt_is_refused(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    line = assert_one_line_error(await run_cli("chat", "-", stdin="  \n"))
    assert "empty" in line
    assert not chat_bodies(ollama_emu)


async def test_ollama_down_is_one_line_naming_the_host(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.refuse_connections()
    for flag in ("--stream", "--no-stream"):
        line = assert_one_line_error(await run_cli("chat", flag, "anyone there?"))
        assert ollama_emu.url in line
        assert "Is Ollama running?" in line


async def test_unknown_model_is_one_line(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    line = assert_one_line_error(await run_cli("chat", "--model", "ghost", "hello"))
    assert "`ghost`" in line and "ollacord models pull ghost" in line


async def test_error_mid_stream_ends_the_partial_line(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    cli_env.setenv("MAX_RETRIES", "0")
    ollama_emu.set_reply("one two three four")
    ollama_emu.error_mid_stream(after_tokens=2)
    run = await run_cli("chat", "--stream", "count")
    line = assert_one_line_error(run)
    assert "model stopped" in line
    assert run.out.endswith("\n") and run.out.startswith("one")
