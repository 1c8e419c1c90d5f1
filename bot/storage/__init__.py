"""Persistence: SQLAlchemy models, engine construction and the SessionStore.

Names are imported on first use: the records (SessionSettings) are plain dataclasses that
the core uses without a database, and a manager without one never loads SQLAlchemy.

May import: SQLAlchemy, Alembic (for migrations), and the core's errors and plain types
(``bot.core.errors``, ``bot.core.history``). Never the core's services (the manager, the
executor, the Ollama client...), nor any layer above the core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.storage.engine import (
        create_engine,
        create_sessionmaker,
        open_engine,
        upgrade_database,
    )
    from bot.storage.records import SessionRecord, SessionSettings
    from bot.storage.store import SessionStore

__all__ = [
    "SessionRecord",
    "SessionSettings",
    "SessionStore",
    "create_engine",
    "create_sessionmaker",
    "open_engine",
    "upgrade_database",
]

_HOMES = {
    "SessionRecord": "bot.storage.records",
    "SessionSettings": "bot.storage.records",
    "SessionStore": "bot.storage.store",
    "create_engine": "bot.storage.engine",
    "create_sessionmaker": "bot.storage.engine",
    "open_engine": "bot.storage.engine",
    "upgrade_database": "bot.storage.engine",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bot.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
