"""``python -m bot``: load settings from the environment and .env, then run the bot."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.ops.logging_setup import setup_logging

log = logging.getLogger("bot")


def main() -> int:
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"ollacord: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, secrets=settings.secrets)
    from bot.discord_app.app import run_bot  # imported late: discord.py is slow to import

    try:
        return asyncio.run(run_bot(settings))
    except KeyboardInterrupt:
        log.info("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
