"""`ollacord health`, `migrate` and `run`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from bot.core.config import Settings
from bot.storage.engine import alembic_config
from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.emulators.ollama_server import OllamaEmulator

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def lines_by_component(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines())


async def test_health_when_everything_answers(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    assert (await run_cli("migrate")).code == 0
    run = await run_cli("health")
    assert run.code == 0, run
    status = lines_by_component(run.out)
    assert list(status) == ["database", "ollama", "discord", "status"]
    assert status["database"].startswith("ok - ")
    assert f"revision {HEAD} (head)" in status["database"]
    assert status["ollama"].startswith(f"ok - {ollama_emu.url}, version 0.12.6, ")
    assert "`llama3.2` present" in status["ollama"]
    assert status["discord"].startswith("not checked by the CLI")
    assert status["status"] == "healthy"


async def test_health_when_ollama_refuses_connections(
    run_cli: RunCli, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.refuse_connections()
    run = await run_cli("health")
    assert run.code == 1, run
    status = lines_by_component(run.out)
    assert status["ollama"].startswith("FAILED - ")
    assert ollama_emu.url in status["ollama"]
    assert status["database"].startswith("ok - ")  # not created yet, but creatable
    assert status["status"] == "degraded"
    assert run.err == ""


async def test_health_when_the_default_model_is_missing(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("DEFAULT_MODEL", "ghost")
    run = await run_cli("health")
    assert run.code == 1, run
    assert "ollacord models pull ghost" in lines_by_component(run.out)["ollama"]


@pytest.fixture
def garbage_database(db_path: Path) -> Path:
    db_path.write_bytes(b"this is not a SQLite database, just some bytes " * 100)
    return db_path


async def test_health_when_the_database_is_broken(run_cli: RunCli, garbage_database: Path) -> None:
    db_path = garbage_database
    run = await run_cli("health")
    assert run.code == 1, run
    database = lines_by_component(run.out)["database"]
    assert database.startswith("FAILED - cannot open") and str(db_path) in database


async def test_health_reports_pending_migrations(run_cli: RunCli, db_path: Path) -> None:
    sqlite3.connect(db_path).close()  # an empty file: opens, but holds no schema yet
    run = await run_cli("health")
    assert run.code == 0, run
    assert "not migrated yet" in lines_by_component(run.out)["database"]


async def test_migrate_reaches_head_once(run_cli: RunCli, db_path: Path) -> None:
    first = await run_cli("migrate")
    assert first.code == 0, first
    assert first.out.rstrip().endswith(f"upgraded from an empty database to revision {HEAD} (head)")
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    again = await run_cli("migrate")
    assert again.code == 0, again
    assert again.out.rstrip().endswith(f"is already at revision {HEAD} (head)")


async def test_migrate_refuses_an_unknown_revision(run_cli: RunCli, db_path: Path) -> None:
    assert (await run_cli("migrate")).code == 0
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    line = assert_one_line_error(await run_cli("migrate"))
    assert "from-the-future" in line


@pytest.mark.parametrize("argv", [["run"], []])
async def test_run_without_a_token_is_a_settings_error(run_cli: RunCli, argv: list[str]) -> None:
    line = assert_one_line_error(await run_cli(*argv), code=2)
    assert "DISCORD_TOKEN" in line


async def test_run_starts_the_bot_with_the_settings(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, ollama_emu: OllamaEmulator
) -> None:
    import bot.discord_app.app

    started: list[Settings] = []

    async def fake_run_bot(settings: Settings, mcp_servers: object = None) -> int:
        started.append(settings)
        return 0

    cli_env.setattr(bot.discord_app.app, "run_bot", fake_run_bot)
    cli_env.setenv("DISCORD_TOKEN", "a-token-for-the-test")
    run = await run_cli("run")
    assert run.code == 0, run
    assert [s.discord_token for s in started] == ["a-token-for-the-test"]
    assert started[0].ollama_host == ollama_emu.url
