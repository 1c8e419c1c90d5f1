"""The session's log audit (log_audit.py) sees every record and catches what it must."""

from __future__ import annotations

import logging

import pytest

from tests.e2e.conftest import E2E_ADMIN_TOKEN, E2E_DISCORD_TOKEN
from tests.security.log_audit import PLUGIN_NAME, AuditHandler, LogAudit, known_secrets

INTERACTION = "aW50ZXJhY3Rpb246" + "Zm9vYmFyYmF6cXV4LXRva2VuLXZhbHVl"


def audited(*records: tuple[str, int, str], exc: BaseException | None = None) -> AuditHandler:
    handler = AuditHandler()
    for name, level, message in records:
        record = logging.LogRecord(name, level, __file__, 1, message, None, None)
        if exc is not None:
            record.exc_info = (type(exc), exc, exc.__traceback__)
        handler.handle(record)
    return handler


def test_the_plugin_is_installed_and_hears_this_test(pytestconfig: pytest.Config) -> None:
    audit = pytestconfig.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(audit, LogAudit)
    assert audit.handler in logging.getLogger().handlers
    before = audit.handler.records
    logging.getLogger("bot.some.module").debug("a debug line reaches the audit")
    assert audit.handler.records == before + 1
    assert {E2E_DISCORD_TOKEN, E2E_ADMIN_TOKEN} <= known_secrets()


def test_a_token_in_a_message_is_a_leak() -> None:
    handler = audited(("bot.x", logging.INFO, f"connecting with {E2E_DISCORD_TOKEN}"))
    [leak] = handler.leaks
    assert leak.logger == "bot.x" and leak.level == "INFO"


def test_a_token_in_a_traceback_is_a_leak() -> None:
    try:
        raise RuntimeError(f"bad header: Bearer {E2E_ADMIN_TOKEN}")
    except RuntimeError as exc:
        handler = audited(("bot.y", logging.ERROR, "it failed"), exc=exc)
    assert len(handler.leaks) == 1


def test_an_interaction_token_outside_a_route_is_a_leak() -> None:
    handler = audited(("bot.z", logging.WARNING, f"could not answer {INTERACTION}"))
    assert len(handler.leaks) == 1


def test_what_production_scrubs_or_keeps_quiet_is_no_leak() -> None:
    # SecretFilter redacts tokens in webhook routes and passwords in URLs; discord.gateway
    # is kept at WARNING by setup_logging, so its debug payloads are never written.
    handler = audited(
        ("discord.http", logging.DEBUG, f"PATCH /api/v10/webhooks/1/{INTERACTION}/messages/2"),
        ("discord.gateway", logging.DEBUG, f'{{"token": "{INTERACTION}"}}'),
        ("bot.db", logging.INFO, "postgresql+asyncpg://u:pw@db/x"),
    )
    assert handler.leaks == []
    assert handler.records == 2
