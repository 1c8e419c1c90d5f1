"""What a slash command's error tells the user, privately: our typed errors explained,
discord.py's checks in words, anything unexpected logged and apologised for."""

from __future__ import annotations

import contextlib
import logging

import discord
from discord import app_commands

from bot.core.errors import OllacordError
from bot.discord_app.advice import explain
from bot.discord_app.replies import WRITTEN

log = logging.getLogger(__name__)

# Discord forgets an interaction not acknowledged within 3 s (10062 Unknown interaction) and
# an interaction's token after 15 minutes (10015 Unknown Webhook, 50027 Invalid Webhook
# Token): nothing reaches the member any more, and it is no fault in the bot's code.
EXPIRED_INTERACTION_CODES = frozenset({10062, 10015, 50027})

# Discord's interface names a few permissions differently from the API.
PERMISSION_LABELS = {
    "manage_guild": "Manage Server",
    "read_message_history": "Read Message History",
}


def error_message(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> str | None:
    """The user's message for ``error``; an unexpected one is logged with its traceback.
    None when the interaction expired: no message can reach the member."""
    original = getattr(error, "original", error)
    command = interaction.command.qualified_name if interaction.command else "?"
    if isinstance(original, discord.HTTPException) and original.code in EXPIRED_INTERACTION_CODES:
        # Discord has shown the member "The application did not respond" (or the like).
        log.warning("/%s: the interaction expired before the bot answered: %s", command, original)
        return None
    if isinstance(original, OllacordError):
        return explain(original)
    if isinstance(error, app_commands.MissingPermissions):
        needed = permission_names(error.missing_permissions)
        return f"You need the {needed} permission to use this command."
    if isinstance(error, app_commands.BotMissingPermissions):
        needed = permission_names(error.missing_permissions)
        return f"I need the {needed} permission here to do that."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here."
    log.error("unexpected error in /%s", command, exc_info=original)
    return "Something went wrong on my side; the error was logged."


def permission_names(permissions: list[str]) -> str:
    return ", ".join(PERMISSION_LABELS.get(p, p.replace("_", " ").title()) for p in permissions)


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Tell only the user. After a defer, the "thinking…" placeholder is removed first: the
    first follow-up would otherwise replace it, as public as the placeholder was."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
            return
        if not interaction.extras.get(WRITTEN):
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not tell the user about an error: %s", exc)
