"""Alembic environment: async engine, batch mode for SQLite, connection sharing for tests."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.storage.engine import create_engine
from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    """-x url=... on the command line, else the ini option, else DATABASE_URL from settings."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    try:
        url = config.get_main_option("sqlalchemy.url")
    except Exception:  # a pyproject-only config has no ini section to read
        url = None
    if url:
        return url
    from bot.core.config import Settings

    return Settings.load(require_discord=False).database_url


def run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure)
    finally:
        await engine.dispose()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # Called from upgrade_database(): reuse the application's connection.
        _configure(connection)
        return
    asyncio.run(_run_async(_database_url()))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
