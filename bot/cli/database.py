"""The commands' database helpers: URLs for messages, SQLite paths, what opening can raise.

Separate from bot.cli.context because SQLAlchemy loads with it: only commands that open
DATABASE_URL import this module.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.cli.context import CliError
from bot.core.config import Settings

# What opening a database can raise: the driver's errors, the file system's, and an
# ImportError when DATABASE_URL names a driver that is not installed (asyncpg).
DATABASE_ERRORS = (SQLAlchemyError, OSError, ImportError)


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return url


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_database(settings: Settings) -> None:
    """Refuse to read sessions from a SQLite file that does not exist.

    Opening it would silently create an empty database, which is never what someone who
    mistyped DATABASE_URL (or ran the CLI from another directory) wants to see.
    """
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        raise CliError(
            f"There is no database at {path} (DATABASE_URL). The bot creates it on its first "
            "start; `ollacord migrate` creates it now."
        )
