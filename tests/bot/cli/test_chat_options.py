"""`ollacord chat` sends only the options someone chose, and the window it decided on."""

from __future__ import annotations

import pytest

from tests.bot.cli.conftest import RunCli
from tests.emulators.ollama_server import OllamaEmulator


def last_chat_options(emu: OllamaEmulator) -> dict[str, object]:
    bodies = [r.json or {} for r in emu.requests if r.path == "/api/chat"]
    return dict(bodies[-1].get("options") or {})


async def test_chat_leaves_sampling_to_the_model(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    run = await run_cli("chat", "--no-stream", "hi")
    assert run.code == 0, run
    assert last_chat_options(ollama_emu) == {"num_ctx": 8192}


async def test_chat_asks_for_the_configured_window(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    cli_env.setenv("DEFAULT_NUM_CTX", "4096")
    run = await run_cli("chat", "--no-stream", "hi")
    assert run.code == 0, run
    assert last_chat_options(ollama_emu) == {"num_ctx": 4096}


async def test_a_question_over_the_window_is_one_line_and_never_sent(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    cli_env.setenv("DEFAULT_NUM_CTX", "256")
    run = await run_cli("chat", "--no-stream", "-", stdin="word " * 1000)
    assert run.code != 0
    assert len(run.err_lines) == 1 and "context window" in run.err, run
    assert not [r for r in ollama_emu.requests if r.path == "/api/chat"]
