"""A pytest plugin that reads every log record the suite produces for secrets.

Installed for the whole session (tests/conftest.py installs it): a
handler on the root logger formats each record, its traceback included, as the bot's own
log handler would (through ``SecretFilter``, which ``setup_logging`` puts on every handler
in production, and without the loggers production keeps quiet), and notes each one that
still holds a secret the tests used: the e2e bot token and admin token, interaction tokens
(recognised by the emulator's prefix), and any value a test registers. At the end of the
session a leak fails the run, naming the logger and the line.

The filter gets no configured secrets here: the bot and admin tokens must never be logged
at all, not only be scrubbed on the way out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from bot.ops.logging_setup import LOG_FORMAT, QUIET_LOGGERS, SecretFilter

# The emulator's interaction tokens start with base64("interaction:"); see discord_driver.
INTERACTION_TOKEN = re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_\-]{16,}")
# Records below this are not shown in failure reports (the default root level), so that
# lowering the root logger for the audit does not flood them.
REPORT_LEVEL = logging.WARNING
# How much of a leaking line the report quotes.
QUOTE_CHARS = 300

PLUGIN_NAME = "ollacord-log-audit"

_secrets: set[str] = set()


def register_secret(*values: str) -> None:
    """Values no log line may hold, for the rest of the session (short ones are refused:
    they would match ordinary text)."""
    for value in values:
        if len(value) < 12:
            raise ValueError(f"too short to audit for: {value!r}")
        _secrets.add(value)


def known_secrets() -> frozenset[str]:
    return frozenset(_secrets)


@dataclass(frozen=True, slots=True)
class Leak:
    logger: str
    level: str
    test: str
    secret: str  # what leaked, shortened
    line: str


def secrets_in(text: str, secrets: Iterable[str]) -> list[str]:
    found = [s for s in secrets if s in text]
    found += INTERACTION_TOKEN.findall(text)
    return found


def _quiet(name: str) -> bool:
    return any(name == q or name.startswith(q + ".") for q in QUIET_LOGGERS)


class AuditHandler(logging.Handler):
    """Formats every record as production would and keeps those that leak a secret."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._scrub = SecretFilter(())
        self.leaks: list[Leak] = []
        self.records = 0
        self.test = "(outside tests)"

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and _quiet(record.name):
            return  # production sets these loggers to WARNING: such records are never written
        try:
            # A copy: the filter rewrites the record, and other handlers (caplog) keep it.
            copy = logging.makeLogRecord(record.__dict__)
            self._scrub.filter(copy)
            text = self.format(copy)
        except Exception:  # a record that cannot be formatted leaks nothing, and says so
            self.handleError(record)
            return
        self.records += 1
        for secret in secrets_in(text, _secrets):
            self.leaks.append(
                Leak(
                    record.name, record.levelname, self.test, secret[:12] + "…", text[:QUOTE_CHARS]
                )
            )


class LogAudit:
    """The plugin object: keeps the handler on the root logger through every test phase
    (tests that call setup_logging replace the root handlers, then restore them)."""

    def __init__(self) -> None:
        self.handler = AuditHandler()

    def _attach(self) -> None:
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        if root.level > logging.DEBUG or root.level == logging.NOTSET:
            root.setLevel(logging.DEBUG)
            # As setup_logging does: the chatty libraries stay at WARNING (production never
            # writes their debug lines, and making them all would slow every test down).
            for name in QUIET_LOGGERS:
                quiet = logging.getLogger(name)
                if quiet.level == logging.NOTSET:
                    quiet.setLevel(logging.WARNING)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # pytest's own capture handlers have no level of their own: keep them at what the
        # root logger let through before (WARNING), so failure reports stay readable.
        plugin = session.config.pluginmanager.get_plugin("logging-plugin")
        if plugin is not None and plugin.log_level is None:
            for handler in (plugin.caplog_handler, plugin.report_handler):
                handler.setLevel(REPORT_LEVEL)
        self._attach()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.handler.test = item.nodeid
        self._attach()
        yield
        self._attach()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        self._attach()
        yield

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        logging.getLogger().removeHandler(self.handler)
        if self.handler.leaks and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        leaks = self.handler.leaks
        if not leaks:
            return
        terminalreporter.section("secrets in the log", red=True)
        for leak in leaks[:20]:
            terminalreporter.line(
                f"{leak.test}: {leak.logger} {leak.level} logged {leak.secret}: {leak.line}"
            )
        terminalreporter.line(f"{len(leaks)} log records held a secret (see tests/security).")


def install(config: pytest.Config) -> None:
    """Called from tests/conftest.py's pytest_configure."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(LogAudit(), PLUGIN_NAME)
