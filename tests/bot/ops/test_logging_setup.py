"""Secrets never reach the log output, whatever logger and format style carried them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bot.ops.logging_setup import REDACTED, SecretFilter, setup_logging


def test_secret_filter_scrubs_message_and_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter(["tok-1234567890", None, "short"]))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("token is %s", "tok-1234567890")
    logger.warning("inline tok-1234567890 and short")
    out = stream.getvalue()
    assert "tok-1234567890" not in out
    assert out.count(REDACTED) == 2
    assert "short" in out  # too short to be a secret worth scrubbing (and would mangle text)


def test_setup_logging_installs_the_filter(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", secrets=["my-very-secret-token"])
        logging.getLogger("discord.http").error("Authorization: Bot my-very-secret-token")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "Authorization: Bot" in err and "my-very-secret-token" not in err


async def test_migrations_log_only_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Alembic's setup chatter (plugins, "Context impl") is not for people; an upgrade is.
    from bot.storage.engine import open_engine, upgrade_database

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        for _ in range(2):  # a new database, then one already at head
            engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'quiet.db'}")
            await upgrade_database(engine)
            await engine.dispose()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "Running upgrade  -> 0001" in err
    assert "setup plugin" not in err and "Context impl" not in err, err
    assert "non-transactional DDL" not in err
