"""`ollacord migrate-data --from URL --to URL`: a line a table and the verdict on stdout,
passwords hidden everywhere; every refusal one line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.storage.transfer import tables
from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.storage.test_transfer import check_copy, fill, stores_of
from tests.support.databases import TestDatabases

PASSWORD = "s3cret-pw"


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / name}"


async def test_sqlite_to_sqlite_prints_every_table_and_the_verdict(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source, target = sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "new/b.db")
    await fill(source)
    run = await run_cli("migrate-data", "--from", source, "--to", target)
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0] == f"Copied {source} to {target}:"
    assert [line.split()[0] for line in lines[1:-1]] == [t.name for t in tables()]
    assert lines[-1].endswith(f"rows in {len(tables())} tables, every count verified.")
    assert run.err == ""
    await check_copy(target)


@pytest.mark.postgresql_only
async def test_sqlite_to_postgresql_hides_the_password(
    run_cli: RunCli, tmp_path: Path, test_databases: TestDatabases
) -> None:
    source = sqlite_url(tmp_path, "a.db")
    await fill(source)
    url, name = test_databases.new_postgres(migrated=False)
    try:
        # The test server trusts 127.0.0.1, so any password gets in: enough to see it hidden.
        target = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
        run = await run_cli("-vv", "migrate-data", "--from", source, "--to", target)
        assert run.code == 0, run
        assert PASSWORD not in run.out + run.err
        assert "postgres:***@127.0.0.1" in run.out
        await check_copy(url)
    finally:
        test_databases.drop(name)


async def test_a_target_holding_data_is_refused_in_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source, target = sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "b.db")
    await fill(source)
    async with stores_of(target) as s:
        await s.state.set("something", "here")
    line = assert_one_line_error(await run_cli("migrate-data", "--from", source, "--to", target))
    assert "already holds data (1 in bot_state)" in line


@pytest.mark.parametrize(
    ("source", "target", "says"),
    [
        ("not a url", "sqlite+aiosqlite:///b.db", "--from is not a database URL"),
        ("sqlite+aiosqlite:///a.db", "sqlite+aiosqlite:///./a.db", "both the source and"),
        ("sqlite+aiosqlite:///nowhere.db", "sqlite+aiosqlite:///b.db", "no database at"),
        (
            "sqlite+aiosqlite:///a.db",
            f"postgresql+asyncpg://bot:{PASSWORD}@127.0.0.1:1/ollacord",
            "postgresql+asyncpg://bot:***@127.0.0.1:1/ollacord",
        ),
        ("sqlite+aiosqlite:///a.db", "nosuchdb+driver://x/y", "Cannot open"),
    ],
    ids=["bad-url", "same-database", "missing-source", "server-unreachable", "unknown-driver"],
)
async def test_bad_urls_are_one_line_without_traceback_or_password(
    run_cli: RunCli, tmp_path: Path, source: str, target: str, says: str
) -> None:
    await fill(sqlite_url(tmp_path, "a.db"))  # the working directory is tmp_path
    run = await run_cli("migrate-data", "--from", source, "--to", target)
    line = assert_one_line_error(run)
    assert says in line
    assert PASSWORD not in run.out + run.err


async def test_both_urls_are_required(run_cli: RunCli) -> None:
    run = await run_cli("migrate-data", "--from", "sqlite+aiosqlite:///a.db")
    assert run.code == 2 and "--to" in run.err
