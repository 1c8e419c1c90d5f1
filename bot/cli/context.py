"""What every command shares: the manager built from Settings, CLI errors, database paths."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.errors import ModelNotFoundError, OllacordError, StorageError
from bot.manager import OllamaRequestManager

log = logging.getLogger(__name__)

# Commands that keep nothing (one-off chat, models) get a private in-memory database, so
# they work where the real one is missing or unwritable, and never create data/ by surprise.
EPHEMERAL_DATABASE_URL = "sqlite+aiosqlite:///:memory:"


# What opening a database can raise: the driver's errors, the file system's, and an
# ImportError when DATABASE_URL names a driver that is not installed (asyncpg).
DATABASE_ERRORS = (SQLAlchemyError, OSError, ImportError)


class CliError(OllacordError):
    """A failure the CLI itself reports (unknown session, missing database): exit code 1."""


class SessionNotFoundError(CliError):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"There is no session `{session_id}` in the database (see `ollacord sessions list`)."
        )


class UsageError(Exception):
    """Arguments argparse could not check by itself; reported like its own errors (exit 2)."""


def manager_from_settings(
    settings: Settings, *, database_url: str | None = None
) -> OllamaRequestManager:
    """The manager exactly as the bot builds it, minus Discord."""
    return OllamaRequestManager.from_settings(
        settings, database_url=database_url or settings.database_url
    )


@contextlib.asynccontextmanager
async def open_manager(
    settings: Settings, *, persistent: bool
) -> AsyncIterator[OllamaRequestManager]:
    """A started manager; ``persistent`` selects DATABASE_URL over a throwaway database."""
    url = settings.database_url if persistent else EPHEMERAL_DATABASE_URL
    manager = manager_from_settings(settings, database_url=url)
    try:
        await manager.start()
    except DATABASE_ERRORS as exc:
        # start() lets the driver's own errors through; the user needs to know which database.
        log.debug("could not open %s", redact_url(url), exc_info=True)
        raise StorageError(
            f"Cannot open the database {redact_url(url)}: {first_line(exc)}"
        ) from None
    try:
        yield manager
    finally:
        # Nothing is left in flight here (every command awaits its own work), so no grace.
        await manager.close(grace=0)


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return url


def first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's trailing SQL and background-link lines."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.strip().splitlines()[0]


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


def error_message(exc: OllacordError, settings: Settings | None) -> str:
    """The one line the user sees. The core's advice is written for Discord users."""
    if isinstance(exc, ModelNotFoundError):
        where = f" at {settings.ollama_host}" if settings else ""
        return (
            f"The model `{exc.model}` is not on the Ollama server{where}: pull it with "
            f"`ollacord models pull {exc.model}` (see `ollacord models list`)."
        )
    return exc.user_message
