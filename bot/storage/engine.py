"""Engine and sessionmaker construction, and running migrations on start."""

from __future__ import annotations

import ast
import functools
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

import migrations
from bot.core.errors import StorageError

if TYPE_CHECKING:  # alembic takes longer to import than SQLAlchemy: loaded only to migrate
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).parent
# SQLite serialises writers; waiting a little beats failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000
# PostgreSQL's pool: a connection for each answer that may run at once, plus a few for the
# background work beside them (the stores' writers, the session index, embeddings, /kb).
DEFAULT_CONCURRENCY = 4
POOL_HEADROOM = 4
POOL_OVERFLOW = 10  # opened for a burst, closed again when it has passed
# Connections older than this are replaced: proxies and firewalls drop idle ones silently.
POOL_RECYCLE_SECONDS = 1800


def create_engine(database_url: str, *, concurrency: int | None = None) -> AsyncEngine:
    """An engine for the URL: SQLite with its pragmas, or a server database with a pool
    sized for ``concurrency`` answers at once (whose connections are checked before use)."""
    url = make_url(database_url)
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        options = {
            "pool_size": max(1, concurrency or DEFAULT_CONCURRENCY) + POOL_HEADROOM,
            "max_overflow": POOL_OVERFLOW,
            "pool_pre_ping": True,
            "pool_recycle": POOL_RECYCLE_SECONDS,
        }
    # A failed statement's error names its SQL, not its parameters: they hold interaction
    # tokens and members' words, and the error is logged.
    engine = create_async_engine(url, hide_parameters=True, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    log.debug("database %s", url.render_as_string(hide_password=True))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL cannot corrupt the database; it only skips an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted conversations (images included) are overwritten with zeros, not left in free
    # pages where anyone with the file could read them.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[DbSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def open_engine(database_url: str, *, concurrency: int | None = None) -> AsyncEngine:
    """create_engine(), with failures (a bad URL, a missing driver) as StorageError."""
    try:
        return create_engine(database_url, concurrency=concurrency)
    except (ArgumentError, ImportError, OSError) as exc:
        raise StorageError(f"Cannot open the database {safe_url(database_url)}: {exc}") from exc


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> None:
    """Run ``alembic upgrade`` on the engine's own connection (works for in-memory SQLite).

    A database already at head is left alone without loading alembic: every start of the
    bot and of `ollacord chat --session` comes here. A database that can't be opened or
    migrated raises StorageError naming it.
    """

    def run(connection: Connection) -> None:
        from alembic import command

        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    try:
        if revision == "head" and await _at_head(engine):
            log.debug("database already at head")
            return
        async with engine.begin() as conn:
            await conn.run_sync(run)
    except (DBAPIError, OSError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        url = safe_url(engine.url.render_as_string(hide_password=False))
        raise StorageError(f"Cannot open the database {url}: {detail}") from exc
    log.debug("database upgraded to %s", revision)


async def _at_head(engine: AsyncEngine) -> bool:
    head = head_revision()
    if head is None:
        return False
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no such table: never migrated (alembic says more if it is worse)
        return False
    return [tuple(row) for row in rows] == [(head,)]


_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.+)$", re.MULTILINE)


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the scripts' text; None if unsure.

    What alembic's ScriptDirectory would say, without importing alembic (about as slow to
    import as SQLAlchemy itself). None (branches, an unreadable script) means "ask alembic".
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in fields:
            continue
        try:
            revision = ast.literal_eval(fields["revision"].strip())
            parent = ast.literal_eval(fields.get("down_revision", "None").strip())
        except (ValueError, SyntaxError):
            return None
        revisions.add(revision)
        parents.update([parent] if isinstance(parent, str) else parent or ())
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def safe_url(database_url: str) -> str:
    """The URL with any password hidden, fit for logs and error messages."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an invalid DATABASE_URL)"
