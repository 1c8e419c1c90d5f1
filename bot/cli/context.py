"""What every command shares: the manager built from Settings, CLI errors.

Kept light on purpose (main imports it): the manager and SQLAlchemy load only when a
command opens them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bot.core.config import Settings
from bot.core.errors import (
    AttachmentError,
    ContextOverflowError,
    ModelNotFoundError,
    OllacordError,
    StorageError,
    StructuredOutputError,
    VisionUnavailableError,
)

if TYPE_CHECKING:
    from bot.core.manager import OllamaRequestManager

log = logging.getLogger(__name__)


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


@contextlib.asynccontextmanager
async def open_manager(
    settings: Settings, *, persistent: bool
) -> AsyncIterator[OllamaRequestManager]:
    """A started manager, exactly as the bot builds it minus Discord.

    ``persistent`` opens DATABASE_URL. Commands that keep nothing (one-off chat, models) get
    a manager without a database: they work where the real one is missing or unwritable,
    never create data/ by surprise, and start without loading SQLAlchemy at all.
    """
    from bot.core.manager import OllamaRequestManager

    url = settings.database_url if persistent else None
    manager = OllamaRequestManager.from_settings(settings, database_url=url)
    if url is None:
        await manager.start()
    else:
        await _start_with_database(manager, url)
    try:
        yield manager
    finally:
        # Nothing is left in flight here (every command awaits its own work), so no grace.
        await manager.close(grace=0)


async def _start_with_database(manager: OllamaRequestManager, url: str) -> None:
    from bot.cli.database import DATABASE_ERRORS, redact_url

    try:
        await manager.start()
    except DATABASE_ERRORS as exc:
        # start() lets the driver's own errors through; the user needs to know which database.
        log.debug("could not open %s", redact_url(url), exc_info=True)
        raise StorageError(
            f"Cannot open the database {redact_url(url)}: {first_line(exc)}"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's trailing SQL and background-link lines."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def error_message(exc: OllacordError, settings: Settings | None) -> str:
    """The one line the user sees: the core's neutral message, with the CLI's advice (naming
    its own commands and flags, as ``bot.discord_app.advice`` names the bot's)."""
    message = exc.user_message
    if isinstance(exc, ModelNotFoundError):
        where = f" at {', '.join(h.label for h in settings.hosts)}" if settings else ""
        return (
            f"The model `{exc.model}` is not on the Ollama server{where}: pull it with "
            f"`ollacord models pull {exc.model}` (see `ollacord models list`)."
        )
    if isinstance(exc, VisionUnavailableError):
        if exc.vision_model is None:
            return _advised(
                message,
                "Use --model with a vision model (for example gemma3 or llava), or set "
                "VISION_MODEL.",
            )
        return _advised(
            message,
            f"Pull it with `ollacord models pull {exc.vision_model}`, or use --model with "
            "another vision model.",
        )
    if isinstance(exc, AttachmentError) and exc.reason == AttachmentError.TOO_LONG:
        return _advised(message, "Use a shorter file, or a larger window (--num-ctx, --model).")
    if isinstance(exc, StructuredOutputError):
        return _advised(message, "Try again, or simplify the schema (--schema, --format).")
    if isinstance(exc, ContextOverflowError):
        return _advised(message, "Shorten it, or use a larger window (--num-ctx).")
    return message


def _advised(message: str, advice: str) -> str:
    # Some core messages end with a quoted problem, not a full stop.
    stop = "" if message.endswith((".", "?", "!")) else "."
    return f"{message}{stop} {advice}"
