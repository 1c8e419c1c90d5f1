"""`ollacord sessions list|export|delete`, on sessions stored the way the bot stores them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import OllamaRequestManager
from tests.bot.cli.conftest import RunCli, assert_one_line_error, exists
from tests.emulators.ollama_server import OllamaEmulator


@pytest.fixture
async def stored(ollama_emu: OllamaEmulator, db_path: Path) -> None:
    """Two sessions written by the request manager, as the bot would write them."""
    url = f"sqlite+aiosqlite:///{db_path}"
    async with OllamaRequestManager(host=ollama_emu.url, database_url=url) as manager:
        await manager.create_session("channel:1", system_prompt="Be brief.")
        await manager.query(prompt="hi", session_id="channel:1")
        await manager.query(prompt="and then?", session_id="channel:1")
        await manager.query(prompt="solo", session_id="dm:2")


@pytest.mark.usefixtures("stored")
async def test_list_shows_ids_counts_and_times(run_cli: RunCli) -> None:
    run = await run_cli("sessions", "list")
    assert run.code == 0, run
    header, *rows = run.out.splitlines()
    assert header.split() == ["ID", "MESSAGES", "UPDATED"]
    assert [row.split()[:2] for row in rows] == [["dm:2", "2"], ["channel:1", "4"]]
    limited = await run_cli("sessions", "list", "--limit", "1")
    assert len(limited.out.splitlines()) == 2


@pytest.mark.usefixtures("stored")
async def test_export_markdown_has_the_system_prompt_and_roles(run_cli: RunCli) -> None:
    run = await run_cli("sessions", "export", "channel:1", "--format", "md")
    assert run.code == 0, run
    headings = [line for line in run.out.splitlines() if line.startswith("#")]
    assert headings == [
        "# Session channel:1",
        "## System",
        "## User",
        "## Assistant",
        "## User",
        "## Assistant",
    ]
    assert "Be brief." in run.out and "Echo: and then?" in run.out


@pytest.mark.usefixtures("stored")
async def test_export_json_has_every_message_and_the_settings(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("MAX_HISTORY_MESSAGES", "2")  # the history window must not cut the export
    run = await run_cli("sessions", "export", "channel:1", "--format", "json")
    assert run.code == 0, run
    document = json.loads(run.out)
    assert document["system_prompt"] == "Be brief."
    assert [m["content"] for m in document["messages"]] == [
        "hi",
        "Echo: hi",
        "and then?",
        "Echo: and then?",
    ]
    assert {"created_at", "updated_at", "model", "options"} <= set(document)


@pytest.mark.usefixtures("stored")
async def test_delete_then_it_is_gone(run_cli: RunCli) -> None:
    run = await run_cli("sessions", "delete", "channel:1")
    assert run.code == 0, run
    assert run.out == "deleted session channel:1 (4 messages)\n"
    listing = await run_cli("sessions", "list")
    assert "channel:1" not in listing.out and "dm:2" in listing.out
    assert_one_line_error(await run_cli("sessions", "delete", "channel:1"))


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("action", ["export", "delete"])
async def test_unknown_session_is_one_line(run_cli: RunCli, action: str) -> None:
    line = assert_one_line_error(await run_cli("sessions", action, "nobody"))
    assert "`nobody`" in line


async def test_missing_database_is_not_created(run_cli: RunCli, db_path: Path) -> None:
    line = assert_one_line_error(await run_cli("sessions", "list"))
    assert str(db_path) in line and "ollacord migrate" in line
    assert not exists(db_path)


async def test_empty_database(run_cli: RunCli) -> None:
    assert (await run_cli("migrate")).code == 0
    run = await run_cli("sessions", "list")
    assert run.code == 0, run
    assert run.out == "" and "no sessions" in run.err


async def test_unopenable_database_is_one_line(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    cli_env.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'x.db'}")
    line = assert_one_line_error(await run_cli("chat", "--session", "s", "hi"))
    assert "Cannot open the database" in line and "a-file" in line
