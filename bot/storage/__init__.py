"""Persistence: SQLAlchemy models, engine construction and the SessionStore."""

from bot.storage.engine import create_engine, create_sessionmaker, upgrade_database
from bot.storage.store import SessionRecord, SessionSettings, SessionStore

__all__ = [
    "SessionRecord",
    "SessionSettings",
    "SessionStore",
    "create_engine",
    "create_sessionmaker",
    "upgrade_database",
]
