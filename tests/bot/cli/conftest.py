"""Running `ollacord` in-process against the Ollama emulator, with a throwaway database.

main() calls asyncio.run(), which cannot nest inside the test's event loop (where the
emulator lives), so each command runs in a worker thread. Settings come from the process
environment, as for a user: every setting is cleared first so the developer's own
environment cannot leak in, and the working directory is an empty one (no stray .env).
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.config import Settings
from tests.emulators.ollama_server import OllamaEmulator


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


RunCli = Callable[..., Awaitable[CliRun]]


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ollacord.db"


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_path: Path, ollama_emu: OllamaEmulator
) -> pytest.MonkeyPatch:
    for f in fields(Settings):
        monkeypatch.delenv(f.name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", ollama_emu.url)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db_path}")
    monkeypatch.setenv("DEFAULT_MODEL", "llama3.2")
    monkeypatch.setenv("RETRY_BACKOFF", "0.01")  # retries still happen, quickly
    return monkeypatch


@pytest.fixture
def run_cli(cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    async def run(*argv: str, stdin: str | None = None) -> CliRun:
        if stdin is not None:
            cli_env.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()  # only this command's output
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


def exists(path: Path) -> bool:
    """For async tests: a stat is too quick to be worth a thread (ruff's ASYNC240)."""
    return path.exists()


def assert_one_line_error(run: CliRun, code: int = 1) -> str:
    """The contract for every failure: the exit code, one `ollacord:` line, no traceback."""
    assert run.code == code, run
    assert len(run.err_lines) == 1, run.err
    assert run.err_lines[0].startswith("ollacord: ")
    assert "Traceback" not in run.err + run.out
    return run.err_lines[0]
