"""create_bot(settings): the discord.py bot, its shared services, extensions and error handling."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.discord_limits import RateLimitTracker
from bot.discord_reply import WRITTEN
from bot.errors import OllacordError
from bot.http_api import DiscordStatus, HttpServer, start_http_server
from bot.manager import OllamaRequestManager

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.chat", "cogs.summarize", "cogs.session", "cogs.models", "cogs.admin")
COMMAND_HASH_KEY = "command_tree_hash"


class OllacordBot(commands.Bot):
    """The bot; cogs reach the shared services through its typed attributes."""

    def __init__(self, settings: Settings, manager: OllamaRequestManager, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        if settings.wants_message_content:
            intents.guild_messages = intents.dm_messages = True
            intents.message_content = True
        self.rate_limits = RateLimitTracker()
        # The bot never joins voice: discord.py's start-up warnings about voice libraries
        # would only send admins looking for a problem that isn't there.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=self.rate_limits.trace_config,
            **options,
        )
        self.settings = settings
        self.manager = manager
        self.router = ConversationRouter(manager)
        self.http_server: HttpServer | None = None  # with HTTP_PORT=0, .port is the bound one
        self.tree.on_error = self.on_app_command_error

    async def on_message(self, message: discord.Message, /) -> None:
        """Nothing: the bot has no prefix commands, so messages skip command parsing (which
        took every mention for an unknown command). Cogs' listeners still see each message."""

    async def setup_hook(self) -> None:
        await self.manager.start()
        if self.settings.http_port is not None:
            self.http_server = await start_http_server(
                self.manager,
                self.discord_status,
                host=self.settings.http_host,
                port=self.settings.http_port,
                admin_token=self.settings.admin_token,
                discord_429=lambda: self.rate_limits.seen_429,
            )
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()

    async def close(self) -> None:
        # Answers in flight finish first: their last edits still need the Discord connection.
        await self.manager.wait_idle()
        try:
            await super().close()
        finally:
            if self.http_server is not None:
                await self.http_server.stop()
            await self.manager.close(grace=0)

    def discord_status(self) -> DiscordStatus:
        return DiscordStatus(self.is_ready() and not self.is_closed(), self.latency)

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the command tree only when it changed since the last sync (hash in the DB)."""
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"{COMMAND_HASH_KEY}:{guild.id if guild else 'global'}"
        if not force and await self.manager.state.get(key) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.manager.state.set(key, digest)
        log.info("synced %d slash commands (%s)", len(synced), key.split(":", 1)[1])
        return True

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d servers",
            self.user,
            self.user.id if self.user else "?",
            len(self.guilds),
        )

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one place errors become ephemeral messages; unexpected ones are logged."""
        original = getattr(error, "original", error)
        if isinstance(original, OllacordError):
            message = original.user_message
        elif isinstance(error, app_commands.MissingPermissions):
            needed = permission_names(error.missing_permissions)
            message = f"You need the {needed} permission to use this command."
        elif isinstance(error, app_commands.BotMissingPermissions):
            needed = permission_names(error.missing_permissions)
            message = f"I need the {needed} permission here to do that."
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = "This command only works in a server."
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = f"Slow down: try again in {error.retry_after:.0f} s."
        elif isinstance(error, app_commands.CheckFailure):
            message = "You are not allowed to use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("unexpected error in /%s", command, exc_info=original)
            message = "Something went wrong on my side; the error was logged."
        await send_ephemeral(interaction, message)


# Discord's interface names a few permissions differently from the API.
PERMISSION_LABELS = {
    "manage_guild": "Manage Server",
    "read_message_history": "Read Message History",
}


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


def create_bot(settings: Settings, **options: Any) -> OllacordBot:
    """Build the bot and its services, without connecting to anything.

    ``options`` go to discord.py's Bot (tests shorten ``guild_ready_timeout``).
    """
    return OllacordBot(settings, OllamaRequestManager.from_settings(settings), **options)


def point_discord_at(api_base: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST calls and gateway connection elsewhere (a proxy, the emulator).

    These are discord.py internals, pinned by its minor version; a contract test guards them.
    """
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def run_bot(settings: Settings) -> int:
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    bot = create_bot(settings)
    assert settings.discord_token is not None
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN: check the token in .env")
        return 1
    except discord.PrivilegedIntentsRequired:
        log.error(
            "MENTION_CHAT/MESSAGE_CONTENT_INTENT need the Message Content intent: enable it "
            "in the Discord developer portal (Bot > Privileged Gateway Intents)"
        )
        return 1
    except OllacordError as exc:
        log.error("%s", exc.user_message)
        return 1
    return 0
