"""Persistence: SQLAlchemy models, engine construction and the SessionStore."""

from bot.storage.engine import create_engine, create_sessionmaker, open_engine, upgrade_database
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
