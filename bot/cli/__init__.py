"""The `ollacord` command line: the bot, chat, models, sessions, health and migrations."""

from bot.cli.main import main

__all__ = ["main"]
