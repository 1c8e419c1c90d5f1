"""The `ollacord` command line: the bot, chat, models, sessions, health and migrations.

May import: ``bot.core``, ``bot.storage``, ``bot.ops`` (logging); ``bot.discord_app`` only to
run the bot. Never ``cogs``.
"""

from bot.cli.main import main

__all__ = ["main"]
