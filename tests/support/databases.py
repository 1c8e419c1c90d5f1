"""Which database the tests run on, and a fresh one for each test.

``pytest --db=sqlite`` (the default): a file in the test's tmp_path.
``pytest --db=postgresql``: a database of its own on a PostgreSQL server, copied from a
template migrated once per run (CREATE DATABASE ... TEMPLATE takes ~30 ms; migrating takes
seconds), dropped after the test. The server is the one ``OLLACORD_TEST_POSTGRES_URL``
names (an admin URL, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres), else a
throwaway one started for the run (tests.support.postgres).

Tests marked ``postgresql_only`` run when a server is at hand: with ``--db=postgresql``, or
with ``OLLACORD_TEST_POSTGRES_URL`` set (then also under ``--db=sqlite``); otherwise they
are skipped. Tests marked ``sqlite_only`` (about SQLite itself) are skipped on PostgreSQL.

tests/conftest.py configures one TestDatabases per run; code that is not a fixture (the
e2e ``world()``) reaches it through ``current()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from tests.support import postgres

BACKENDS = ("sqlite", "postgresql")
ENV_URL = "OLLACORD_TEST_POSTGRES_URL"


class TestDatabases:
    """The run's backend, and (lazily) its PostgreSQL server and template database."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, backend: str, server_url: str | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown database backend {backend!r}")
        self.backend = backend
        self._server_url = server_url
        self._server: postgres.PostgresServer | None = None
        self._template: str | None = None
        # Unique per run: several runs may share one server.
        self._prefix = f"t{os.getpid()}_{secrets.token_hex(3)}"
        self._numbers = itertools.count(1)

    @property
    def postgres_available(self) -> bool:
        return self._server_url is not None or self.backend == "postgresql"

    def server_url(self) -> str:
        """The admin URL of the run's server, starting a throwaway one if none was given."""
        if self._server_url is None:
            if not self.postgres_available:
                raise postgres.PostgresUnavailable(
                    f"no PostgreSQL for this run: use --db=postgresql or set {ENV_URL}"
                )
            self._server = postgres.PostgresServer()
            self._server_url = self._server.start()
        return self._server_url

    def _template_name(self) -> str:
        if self._template is None:
            name = f"{self._prefix}_template"
            url = postgres.create_database(self.server_url(), name)
            self._template = name  # dropped at close even if migrating fails
            postgres._sync(_migrate(url))
        return self._template

    def new_postgres(self, *, migrated: bool = True) -> tuple[str, str]:
        """A new database, at head or empty: (its URL, its name, for drop())."""
        template = self._template_name() if migrated else None
        name = f"{self._prefix}_{next(self._numbers)}"
        return postgres.create_database(self.server_url(), name, template=template), name

    def drop(self, name: str) -> None:
        postgres.drop_database(self.server_url(), name)

    @contextlib.contextmanager
    def postgres_database(self, *, migrated: bool = True) -> Iterator[str]:
        url, name = self.new_postgres(migrated=migrated)
        try:
            yield url
        finally:
            self.drop(name)

    @contextlib.contextmanager
    def database(
        self, tmp_path: Path, filename: str = "ollacord.db", *, migrated: bool = True
    ) -> Iterator[str]:
        """A fresh database of the run's backend, for one test: its URL.

        On SQLite the file ``filename`` in ``tmp_path``, not migrated yet (the code under
        test does that). On PostgreSQL already at head: migrating again is a no-op for the
        code under test. ``migrated=False``: an empty one on both.
        """
        if self.backend == "sqlite":
            yield f"sqlite+aiosqlite:///{tmp_path / filename}"
            return
        with self.postgres_database(migrated=migrated) as url:
            yield url

    @contextlib.asynccontextmanager
    async def database_async(
        self, tmp_path: Path, filename: str = "ollacord.db"
    ) -> AsyncIterator[str]:
        """database(), from inside an event loop (the server work runs in a thread)."""
        if self.backend == "sqlite":
            yield f"sqlite+aiosqlite:///{tmp_path / filename}"
            return
        url, name = await asyncio.to_thread(self.new_postgres)
        try:
            yield url
        finally:
            await asyncio.to_thread(self.drop, name)

    def close(self) -> None:
        """Drop the template and stop the throwaway server (if this run started one)."""
        try:
            if self._template is not None and self._server_url is not None:
                with contextlib.suppress(Exception):  # the server may be gone already
                    postgres.drop_database(self._server_url, self._template)
        finally:
            self._template = None
            if self._server is not None:
                self._server.stop()
                self._server = None
                self._server_url = None


async def _migrate(url: str) -> None:
    from bot.storage.engine import create_engine, upgrade_database

    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


def fetch_all(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of a read-only query on any database URL (a test looking behind the stores);
    callable from sync code and from inside an event loop."""
    return postgres._sync(_fetch_all(url, query))


def count_rows(url: str, table: str) -> int:
    ((count,),) = fetch_all(url, f"SELECT count(*) FROM {table}")
    return int(count)


async def _fetch_all(url: str, query: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    from bot.storage.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(query))).all()]
    finally:
        await engine.dispose()


_current: TestDatabases | None = None


def configure(backend: str, server_url: str | None) -> TestDatabases:
    global _current
    _current = TestDatabases(backend, server_url)
    return _current


def current() -> TestDatabases:
    """The run's TestDatabases (SQLite outside pytest, e.g. in a benchmark)."""
    global _current
    if _current is None:
        _current = TestDatabases("sqlite", os.environ.get(ENV_URL) or None)
    return _current


def unconfigure() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None
