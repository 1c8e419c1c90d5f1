"""The `ollacord` entry point: help, exit codes, errors as one line, Ctrl-C, imports."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main, models
from bot.core.config import Settings
from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.emulators.ollama_server import OllamaEmulator

ROOT = Path(__file__).parents[3]
COMMANDS = ("run", "chat", "models", "sessions", "health", "migrate")


async def run_process(*argv: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=env.pop("CWD"),
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_help_lists_every_command(run_cli: RunCli) -> None:
    run = await run_cli("--help")
    assert run.code == 0
    for command in COMMANDS:
        assert f"\n    {command} " in run.out
    for command in ("chat", "models pull", "sessions export"):
        sub = await run_cli(*command.split(), "--help")
        assert sub.code == 0 and sub.out.startswith(f"usage: ollacord {command}")


async def test_every_option_has_help(run_cli: RunCli) -> None:
    from bot.cli.parser import build_parser

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.dest} has no help"
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{parser.prog} {choice.dest} has no help"
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())


async def test_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ollacord"
    proc = await run_process(str(script), "--help", env={"CWD": str(tmp_path)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("usage: ollacord")
    assert all(command in out.decode() for command in COMMANDS)


async def test_commands_other_than_run_do_not_load_discord(tmp_path: Path) -> None:
    """Against a closed port: exercises the whole health path, then inspects sys.modules."""
    code = (
        "import sys; from bot.cli import main; code = main(['health']); "
        "print(code, 'discord' in sys.modules)"
    )
    proc = await run_process(
        sys.executable,
        "-c",
        code,
        env={"CWD": str(tmp_path), "OLLAMA_HOST": "http://127.0.0.1:9"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out.decode().splitlines()[-1] == "1 False", (out + err).decode()


async def test_ctrl_c_exits_130_quietly(tmp_path: Path, ollama_emu: OllamaEmulator) -> None:
    asked = asyncio.Event()

    def reply(body: dict[str, Any]) -> str:
        asked.set()  # the question reached Ollama: the CLI is now waiting for the answer
        return "too late"

    ollama_emu.set_reply(reply)
    ollama_emu.stall_before_first_token(30)
    proc = await run_process(
        sys.executable,
        "-m",
        "bot.cli",
        "chat",
        "--stream",
        "hello?",
        env={"CWD": str(tmp_path), "OLLAMA_HOST": ollama_emu.url},
    )
    try:
        await asyncio.wait_for(asked.wait(), 30)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert (out, err) == (b"", b"")


async def test_keyboard_interrupt_in_process(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "list_models", interrupted)
    run = await run_cli("models", "list")
    assert (run.code, run.out, run.err) == (130, "", "")


async def test_bad_arguments_are_argparse_errors(run_cli: RunCli) -> None:
    run = await run_cli("chat", "--temperature-please", "hi")
    assert run.code == 2
    assert run.err.startswith("usage: ollacord")
    assert "unrecognized arguments: --temperature-please" in run.err
    bad_limit = await run_cli("sessions", "list", "--limit", "0")
    assert bad_limit.code == 2 and "must be at least 1" in bad_limit.err


async def test_bad_settings_are_the_bots_one_line(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("MAX_RETRIES", "lots")
    cli_env.setenv("OLLAMA_HOST", "nope")
    line = assert_one_line_error(await run_cli("chat", "hi"), code=2)
    with pytest.raises(Exception) as raised:
        Settings.from_mapping({"MAX_RETRIES": "lots", "OLLAMA_HOST": "nope"}, require_discord=False)
    assert line == f"ollacord: {raised.value}"


async def test_settings_come_from_dotenv(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, tmp_path: Path, ollama_emu: OllamaEmulator
) -> None:
    cli_env.delenv("OLLAMA_HOST")
    (tmp_path / ".env").write_text(f"OLLAMA_HOST={ollama_emu.url}\nDEFAULT_MODEL=qwen3\n")
    cli_env.delenv("DEFAULT_MODEL")
    run = await run_cli("chat", "--json", "hi")
    assert run.code == 0, run
    assert '"model": "qwen3"' in run.out


async def test_unexpected_errors_are_one_line_too(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(models, "list_models", broken)
    line = assert_one_line_error(await run_cli("models", "list"))
    assert line == "ollacord: unexpected error: RuntimeError: a bug (run with -v for details)"


async def test_verbose_logs_and_leaves_logging_as_it_was(run_cli: RunCli) -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    run = await run_cli("-vv", "models", "list")
    assert run.code == 0, run
    assert "DEBUG" in run.err  # the logs went to stderr...
    assert (root.handlers, root.level) == before  # ...and the test process's setup is back


def test_main_reads_sys_argv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["ollacord", "--version"])
    assert main() == 0
    assert capsys.readouterr().out.startswith("ollacord ")
