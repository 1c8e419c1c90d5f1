"""Logging configuration, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
REDACTED = "[redacted]"
# discord.py and httpx are chatty at INFO; their warnings still come through.
QUIET_LOGGERS = (
    "discord.gateway",
    "discord.client",
    "httpx",
    "httpcore",
    "httpx2",  # the MCP SDK's HTTP client: it logs every request's URL at INFO
    "httpcore2",
    "mcp",
    "aiosqlite",
    "alembic.runtime.plugins",  # seven "setup plugin" lines on every start
)


# Credentials that are not settings, recognised by where they sit: an interaction token in a
# webhook or interaction route (it lets anyone post as the bot for 15 minutes; discord.py
# logs such routes on 429s and at DEBUG), and the password of a URL such as DATABASE_URL.
_CREDENTIALS = re.compile(
    r"(?P<route>/(?:webhooks|interactions)/\d+/)[^/?#\s'\"]+"
    r"|(?P<userinfo>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@",
    re.IGNORECASE,
)


def _redact_credential(match: re.Match[str]) -> str:
    if match.group("route"):
        return match.group("route") + REDACTED
    return match.group("userinfo") + REDACTED + "@"


class SecretFilter(logging.Filter):
    """Replaces secrets in the formatted message (and its arguments) before any handler runs:
    the configured ones (tokens) and credentials recognised by their place in a URL."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = message
        for secret in self._secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, REDACTED)
        if "/webhooks/" in scrubbed or "/interactions/" in scrubbed or "@" in scrubbed:
            scrubbed = _CREDENTIALS.sub(_redact_credential, scrubbed)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # The formatter would render the traceback later, past this filter: do it now.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _CREDENTIALS.sub(_redact_credential, text)


class OnlyMigrationSteps(logging.Filter):
    """Of Alembic's migration log, keep the steps ("Running upgrade 0002 -> 0003") and drop
    the setup lines it writes on every start ("Context impl SQLiteImpl.")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or str(record.msg).startswith("Running ")


class OneLineReconnects(logging.Filter):
    """discord.py logs every attempt to reach its gateway again at ERROR with a traceback,
    one per attempt for as long as Discord is away: one WARNING line with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_logging(level: str, secrets: Iterable[str | None] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("discord.client", "discord.shard"):
        reconnects = logging.getLogger(name)
        if not any(isinstance(f, OneLineReconnects) for f in reconnects.filters):
            reconnects.addFilter(OneLineReconnects())
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, OnlyMigrationSteps) for f in migration.filters):
        migration.addFilter(OnlyMigrationSteps())
