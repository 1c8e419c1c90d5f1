"""Copying an installation from one database to another (SQLite to PostgreSQL, say).

Every table the models define is copied, parents before children, in batches bounded in
rows and in bytes (a knowledge base's vectors or a conversation's images never sit in memory
all at once), in one transaction on the target: a failure leaves it as empty as it was.
The source is only read, in one transaction too, so the copy is one consistent moment.

The target is migrated to head first and must hold no data; the source must already be at
head (its columns are the models'). Afterwards PostgreSQL's sequences go on from the
largest ids copied, and every table is counted on both sides.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.core.errors import StorageError
from bot.storage.engine import create_engine, head_revision, upgrade_database
from bot.storage.models import Base

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # rows per INSERT (SQLite's bound-parameter limit allows this many)
BATCH_BYTES = 16 * 1024 * 1024  # ...or fewer, once their text and bytes add up to this
READ_ROWS = 100  # rows fetched from the source at a time
# What opening or reading a database can raise besides our own StorageError.
_FAILURES = (DBAPIError, OSError, ImportError)

Progress = Callable[[str, int], None]  # (table, rows copied so far)


class TransferRefused(StorageError):
    """The transfer would not be safe (same database, a target holding data...)."""


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True, slots=True)
class TransferResult:
    source: str  # the URLs, passwords hidden
    target: str
    tables: tuple[TableCount, ...]  # in the order copied

    @property
    def rows(self) -> int:
        return sum(t.target for t in self.tables)

    @property
    def verified(self) -> bool:
        return all(t.matches for t in self.tables)


def tables() -> list[Table]:
    """Every table, parents before the tables whose foreign keys point at them."""
    return list(Base.metadata.sorted_tables)


async def transfer(
    source_url: str, target_url: str, *, progress: Progress | None = None
) -> TransferResult:
    """Copy every table from ``source_url`` to ``target_url`` (see the module's doc)."""
    source, target = _parse(source_url, "--from"), _parse(target_url, "--to")
    shown_source, shown_target = _shown(source), _shown(target)
    if _same_database(source, target):
        raise TransferRefused(f"{shown_source} is both the source and the target")
    if not _source_exists(source):  # opening it would create an empty file
        raise TransferRefused(f"There is no database at {shown_source}")
    async with (
        _engine(source_url, shown_source) as reader,
        _engine(target_url, shown_target) as writer,
    ):
        await _check_source(reader, shown_source)
        try:
            await upgrade_database(writer)
            async with reader.connect() as src, writer.begin() as dst:
                held = await _counts(dst)
                if any(held.values()):
                    raise TransferRefused(
                        f"{shown_target} already holds data ({_summary(held)}): "
                        "migrate-data copies into an empty database only"
                    )
                for table in tables():
                    await _copy(src, dst, table, progress)
                if dst.dialect.name == "postgresql":
                    await _reset_sequences(dst)
            async with reader.connect() as src, writer.connect() as dst:
                before, after = await _counts(src), await _counts(dst)
        except _FAILURES as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise StorageError(
                f"Copying {shown_source} to {shown_target} failed: "
                f"{detail[0] if detail else type(exc).__name__}"
            ) from exc
    counts = tuple(TableCount(t.name, before[t.name], after[t.name]) for t in tables())
    return TransferResult(shown_source, shown_target, counts)


# --- steps -----------------------------------------------------------------------------------


def _parse(url: str, option: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise TransferRefused(f"{option} is not a database URL") from exc


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _same_database(a: URL, b: URL) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return _sqlite_file(a) == _sqlite_file(b)
    return (a.host, a.port, a.database) == (b.host, b.port, b.database)


def _source_exists(url: URL) -> bool:
    return url.get_backend_name() != "sqlite" or Path(url.database or "").is_file()


def _sqlite_file(url: URL) -> str:
    name = url.database or ""
    return name if name in ("", ":memory:") else str(Path(name).resolve())


@contextlib.asynccontextmanager
async def _engine(url: str, shown: str) -> AsyncIterator[AsyncEngine]:
    try:
        engine = create_engine(url)
    except (ArgumentError, ImportError, OSError) as exc:
        raise StorageError(f"Cannot open {shown}: {exc}") from exc
    try:
        yield engine
    finally:
        await engine.dispose()


async def _check_source(engine: AsyncEngine, shown: str) -> None:
    """The source must be an ollacord database at the revision these models describe."""
    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(_revision)
    except _FAILURES as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(f"Cannot read {shown}: {detail[0] if detail else exc}") from exc
    if revision is None:
        raise TransferRefused(f"{shown} holds no ollacord data (it was never migrated)")
    head = head_revision()
    if revision != head:
        raise TransferRefused(
            f"{shown} is at revision {revision}, not {head}: run `ollacord migrate` on it first"
        )


def _revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    found = {}
    for table in tables():
        found[table.name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return found


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} in {name}" for name, n in counts.items() if n)


async def _copy(
    src: AsyncConnection, dst: AsyncConnection, table: Table, progress: Progress | None
) -> None:
    """Stream the table's rows in primary-key order, inserting them in bounded batches."""
    query = select(table).order_by(*table.primary_key.columns)
    result = await src.stream(query.execution_options(yield_per=READ_ROWS))
    batch: list[dict[str, Any]] = []
    size = copied = 0
    async for part in result.partitions(READ_ROWS):
        for row in part:
            values = dict(row._mapping)
            batch.append(values)
            size += sum(len(v) for v in values.values() if isinstance(v, str | bytes))
            if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                copied += await _insert(dst, table, batch)
                batch, size = [], 0
                if progress is not None:
                    progress(table.name, copied)
    if batch:
        copied += await _insert(dst, table, batch)
    if progress is not None:
        progress(table.name, copied)
    log.debug("copied %d rows of %s", copied, table.name)


async def _insert(dst: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> int:
    await dst.execute(insert(table), rows)
    return len(rows)


async def _reset_sequences(dst: AsyncConnection) -> None:
    """Rows were inserted with their ids: each sequence goes on after the largest one."""
    for table in tables():
        column = table.autoincrement_column
        if column is None:
            continue
        await dst.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                f"COALESCE(MAX({column.name}), 1), MAX({column.name}) IS NOT NULL) "
                f"FROM {table.name}"
            )
        )
