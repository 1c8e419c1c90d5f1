"""Alembic's head must match the SQLAlchemy models, and migrate both ways."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.storage import create_engine, upgrade_database
from bot.storage.engine import alembic_config
from bot.storage.models import Base


async def test_upgrade_head_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade_database(engine)

    def diff(conn: Connection) -> list:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    await engine.dispose()


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade_database(engine)

    def downgrade(conn: Connection) -> list[str]:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        return inspect(conn).get_table_names()

    async with engine.begin() as conn:
        tables = await conn.run_sync(downgrade)
    assert set(tables) <= {"alembic_version"}
    await upgrade_database(engine)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert {"sessions", "messages", "bot_state"} <= set(names)
    await engine.dispose()
