"""``python -m bot``: load settings from the environment and .env, then run the bot."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.core.tools.mcp_config import load_mcp_config
from bot.ops.logging_setup import setup_logging
from bot.ops.process import limit_blas_threads

log = logging.getLogger("bot")


def main() -> int:
    limit_blas_threads()
    try:
        settings = Settings.load()
        mcp_servers = load_mcp_config(settings.mcp_config) if settings.mcp_config else []
    except ConfigError as exc:
        print(f"ollacord: {exc}", file=sys.stderr)
        return 2
    mcp_secrets = [secret for server in mcp_servers for secret in server.secrets]
    setup_logging(settings.log_level, secrets=[*settings.secrets, *mcp_secrets])
    from bot.discord_app.app import run_bot  # imported late: discord.py is slow to import

    try:
        return asyncio.run(run_bot(settings, mcp_servers))
    except KeyboardInterrupt:
        log.info("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
