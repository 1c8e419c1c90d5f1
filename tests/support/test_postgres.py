"""The throwaway PostgreSQL server: as a library and from a shell; databases made from a
template, and dropped even with a connection left open."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.storage import create_engine
from tests.support import postgres
from tests.support.databases import TestDatabases

ROOT = Path(__file__).parents[2]

needs_binaries = pytest.mark.skipif(
    not postgres.available(), reason="the PostgreSQL server binaries are not installed"
)


async def server_version(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


@needs_binaries
async def test_library_starts_a_server_and_stopping_removes_it() -> None:
    # Under /tmp (reachable by the server's user), unique: runs at once must not share it.
    directory = Path(tempfile.mkdtemp(prefix="ollacord-pg-test-", dir="/tmp"))
    async with postgres.PostgresServer(directory) as url:
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert url.endswith("/postgres")
        assert (await server_version(url))[:2].isdigit()
        assert await asyncio.to_thread((directory / "data" / "postmaster.pid").exists)
    assert not await asyncio.to_thread(directory.exists)


@needs_binaries
def test_shell_start_prints_the_url_and_stop_removes_the_directory() -> None:
    directory = Path(tempfile.mkdtemp(prefix="ollacord-pg-shell-", dir="/tmp"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tests.support.postgres", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    started = run("start", str(directory))
    try:
        assert started.returncode == 0, started.stderr
        (url,) = started.stdout.split()
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert (directory / "data" / "postmaster.pid").exists()
    finally:
        stopped = run("stop", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    assert run("start").returncode == 2  # usage, one line


def test_a_directory_holding_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(postgres.PostgresUnavailable):
        postgres.PostgresServer(tmp_path).start()
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.postgresql_only
async def test_databases_from_the_template_are_at_head_and_dropped_with_open_connections(
    test_databases: TestDatabases,
) -> None:
    url, name = test_databases.new_postgres()
    engine = create_engine(url)
    conn = await engine.connect()  # left open while the database is dropped
    assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    test_databases.drop(name)
    with contextlib.suppress(DBAPIError):  # cut by the server
        await conn.close()
    await engine.dispose()
    admin = create_engine(test_databases.server_url())
    async with admin.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
        )
    await admin.dispose()
    assert found == 0
