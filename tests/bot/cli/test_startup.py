"""What each command loads: a fast start means not importing what the command does not use.

Checked in fresh interpreters through sys.modules, not with a clock (bench/cli_startup.py
has the timings).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from bot import OllamaRequestManager
from bot.core.errors import InvalidRequestError
from bot.storage.engine import alembic_config, head_revision
from tests.bot.cli.conftest import RunCli
from tests.bot.cli.test_main import run_process
from tests.emulators.ollama_server import OllamaEmulator

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
HEAVY = ("alembic", "sqlalchemy", "aiosqlite", "discord", "aiohttp", "ollama", "httpx")

# Runs one command in a fresh interpreter, then reports which heavy packages it loaded.
PROBE = f"""\
import json, sys
from bot.cli.main import main
code = main(sys.argv[1:])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
print("\\nPROBE " + json.dumps({{"code": code, "loaded": loaded}}))
"""


async def probe(tmp_path: Path, *argv: str, **env: str) -> tuple[int, list[str], str]:
    """Exit code, heavy packages loaded, and the command's own stdout."""
    proc = await run_process(sys.executable, "-c", PROBE, *argv, env={"CWD": str(tmp_path), **env})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    head, _, report = text.rpartition("\nPROBE ")
    assert report, (out + err).decode()
    result = json.loads(report)
    return result["code"], result["loaded"], head


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["chat", "--help"], ["sessions", "set", "--help"], []],
    ids=["help", "version", "chat-help", "sessions-set-help", "bad-usage"],
)
async def test_help_loads_none_of_the_stack(tmp_path: Path, argv: list[str]) -> None:
    if not argv:  # an argparse error takes the same path as --help
        argv = ["chat", "--temperature", "hot"]
    code, loaded, _ = await probe(tmp_path, *argv)
    assert code in (0, 2)
    assert loaded == []


async def test_one_off_chat_loads_no_database_and_no_discord(
    tmp_path: Path, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply("Hello there.")
    code, loaded, out = await probe(tmp_path, "chat", "--stream", "hi", OLLAMA_HOST=ollama_emu.url)
    assert code == 0
    assert out == "Hello there.\n"
    assert loaded == ["httpx", "ollama"]


async def test_chat_in_a_session_skips_alembic_when_the_database_is_at_head(
    tmp_path: Path, run_cli: RunCli, db_path: Path, ollama_emu: OllamaEmulator
) -> None:
    assert (await run_cli("migrate")).code == 0
    ollama_emu.set_reply("Noted.")
    env = {"OLLAMA_HOST": ollama_emu.url, "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}"}
    code, loaded, out = await probe(tmp_path, "chat", "--session", "s1", "remember 7", **env)
    assert (code, out) == (0, "Noted.\n")
    assert "alembic" not in loaded
    assert "sqlalchemy" in loaded  # the session was stored: the database was used
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT count(*) FROM messages WHERE session_id = 's1'").fetchone()
    assert rows == (2,)


async def test_chat_in_a_session_still_migrates_an_older_database(
    tmp_path: Path, run_cli: RunCli, db_path: Path, ollama_emu: OllamaEmulator
) -> None:
    url = f"sqlite+aiosqlite:///{db_path}"
    assert (await run_cli("migrate")).code == 0
    # alembic's env.py runs its own event loop: not on this one.
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0001")
    env = {"OLLAMA_HOST": ollama_emu.url, "DATABASE_URL": url}
    code, loaded, _ = await probe(tmp_path, "chat", "--session", "s1", "hi", **env)
    assert code == 0
    assert "alembic" in loaded
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


async def test_a_manager_without_a_database_answers_but_keeps_no_sessions(
    ollama_emu: OllamaEmulator,
) -> None:
    """What one-off `chat` and `models` run on."""
    async with OllamaRequestManager(host=ollama_emu.url, database_url=None) as manager:
        result = await manager.query(prompt="hello")
        assert result.content == "Echo: hello"
        with pytest.raises(InvalidRequestError, match="without a database"):
            await manager.query(prompt="hello", session_id="s1")
        with pytest.raises(InvalidRequestError, match="without a database"):
            await manager.store.list()
    assert [r.path for r in ollama_emu.requests].count("/api/chat") == 1


def test_the_head_revision_is_read_like_alembic_reads_it() -> None:
    assert head_revision() == HEAD
