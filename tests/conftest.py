"""Shared fixtures: the Ollama emulator on 127.0.0.1 and a request manager talking to it;
the database each test gets (``--db=sqlite|postgresql``, see tests/support/databases.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import OllamaRequestManager
from tests.emulators.ollama_server import OllamaEmulator
from tests.security import log_audit
from tests.support import databases
from tests.support.databases import ENV_URL, TestDatabases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=databases.BACKENDS,
        default="sqlite",
        help=f"the database the tests run on (postgresql: the server {ENV_URL} names, "
        "else a throwaway one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    databases.configure(config.getoption("--db"), os.environ.get(ENV_URL) or None)
    log_audit.install(config)  # every log record of the session, read for secrets


def pytest_unconfigure(config: pytest.Config) -> None:
    databases.unconfigure()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = databases.current()
    on_postgres = pytest.mark.skip(reason="about SQLite itself (--db=postgresql)")
    no_server = pytest.mark.skip(reason=f"needs PostgreSQL: --db=postgresql or {ENV_URL}")
    for item in items:
        if run.backend == "postgresql" and item.get_closest_marker("sqlite_only"):
            item.add_marker(on_postgres)
        if not run.postgres_available and item.get_closest_marker("postgresql_only"):
            item.add_marker(no_server)


@pytest.fixture(scope="session")
def test_databases() -> TestDatabases:
    return databases.current()


@pytest.fixture
def db_backend(test_databases: TestDatabases) -> str:
    """The backend this run's database_url is on: "sqlite" or "postgresql"."""
    return test_databases.backend


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator() as emu:
        yield emu


@pytest.fixture
def database_url(tmp_path: Path, test_databases: TestDatabases) -> Iterator[str]:
    """A fresh database of the run's backend (on PostgreSQL already migrated to head)."""
    with test_databases.database(tmp_path) as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path: Path, test_databases: TestDatabases) -> Iterator[str]:
    """A fresh database of the run's backend that has never been migrated."""
    with test_databases.database(tmp_path, "empty.db", migrated=False) as url:
        yield url


@pytest.fixture
def postgres_url(test_databases: TestDatabases) -> Iterator[str]:
    """A fresh PostgreSQL database at head, whatever the backend (mark the test
    ``postgresql_only``: it is skipped where no server is at hand)."""
    if not test_databases.postgres_available:
        pytest.skip(f"needs PostgreSQL: --db=postgresql or {ENV_URL}")
    with test_databases.postgres_database() as url:
        yield url


ManagerFactory = Callable[..., OllamaRequestManager]


@pytest.fixture
async def make_manager(
    ollama_emu: OllamaEmulator, database_url: str
) -> AsyncIterator[ManagerFactory]:
    """Build started managers against the emulator; tiny backoff keeps retry tests fast."""
    made: list[OllamaRequestManager] = []

    def factory(**overrides: Any) -> OllamaRequestManager:
        options: dict[str, Any] = {
            "host": ollama_emu.url,
            "default_model": "llama3.2",
            "database_url": database_url,
            "retry_backoff": 0.01,
            "request_timeout": 10.0,
            "first_token_timeout": 5.0,
            "stream_idle_timeout": 5.0,
        }
        options.update(overrides)
        manager = OllamaRequestManager(**options)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.close()


@pytest.fixture
async def manager(make_manager: ManagerFactory) -> OllamaRequestManager:
    m = make_manager()
    await m.start()
    return m
