"""The discord.py side: ``create_bot()`` and the bot's lifecycle (``app``), reply sinks for
interactions and channels (``replies``), rate limits read from Discord's headers
(``rate_limits``), which conversation a place maps to (``routing``), and the replies in flight
remembered across a crash (``live_replies``, ``unfinished_replies``).

May import: ``discord``, ``bot.ops``, ``bot.presentation``, ``bot.core``, ``bot.storage``.
Never ``cogs`` (extensions are loaded by name) nor ``bot.cli``.
"""
