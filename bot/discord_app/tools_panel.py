"""The panel of /settings tools: which tools the model may use in a channel, chosen with a
select menu (up to Discord's 25 options) or by name, and saved at once."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import discord

from bot.core.errors import InvalidRequestError, OllacordError
from bot.core.memory.notes import REMEMBER
from bot.core.tools.registry import ToolRegistry
from bot.discord_app.advice import explain
from bot.discord_app.routing import ConversationRouter, Place
from bot.storage import SessionSettings

log = logging.getLogger(__name__)

MAX_SELECT_OPTIONS = 25  # Discord's limit on a select menu's options
MAX_OPTION_TEXT = 100  # a select option's label, value and description
MAX_LIST_CHARS = 400  # one list of tool names in the panel (a message holds 2000)
PANEL_TIMEOUT = 14 * 60  # the panel is an ephemeral reply: its token lasts 15 minutes
NO_TOOLS, DEFAULT_TOOLS = "none", "default"
SAVED = "Saved. "


def names_list(names: Iterable[str], limit: int = MAX_LIST_CHARS) -> str:
    text = ", ".join(f"`{name}`" for name in names) or "none"
    return text if len(text) <= limit else text[:limit].rsplit(", ", 1)[0] + ", …"


def origin(channel: object, guild: object, default: str = "the bot's default") -> str:
    """Where a setting comes from: the channel's own value wins over the server's."""
    return "this channel" if channel is not None else "server" if guild is not None else default


def allowed_tools(
    registry: ToolRegistry, guild: SessionSettings, channel: SessionSettings
) -> list[str]:
    """The tools chosen for the channel, else for the server, else the default ones."""
    chosen = channel.tools if channel.tools is not None else guild.tools
    return registry.default_names() if chosen is None else list(chosen)


def tools_text(registry: ToolRegistry, guild: SessionSettings, channel: SessionSettings) -> str:
    """The tools allowed here and where that choice comes from, the defaults, and what is
    unavailable now."""
    allowed = allowed_tools(registry, guild, channel)
    where = origin(channel.tools, guild.tools, "the defaults")
    lines = [f"**Allowed here** ({where}): {names_list(allowed)}"]
    # remember is no admin's pick per channel: it joins wherever the server opted in.
    off = [
        t.name
        for t in registry
        if not t.default_on and t.source == "builtin" and t.name != REMEMBER
    ]
    lines.append(
        f"On by default: {names_list(registry.default_names())}. Off unless chosen: "
        f"{names_list(off)}{' and' if off else ''} every MCP server's tools. `{REMEMBER}` "
        "joins where the server keeps members' notes (`/settings memory`)."
    )
    missing = [name for name in allowed if name not in registry]
    if missing:
        lines.append(f"Chosen but missing now: {names_list(missing)}.")
    down = registry.unavailable
    if down:
        reasons = "; ".join(f"`{source}`: {why}" for source, why in down.items())
        lines.append(f"Servers unavailable now: {reasons[:MAX_LIST_CHARS]}.")
    return "\n".join(lines)


def fits_a_select(registry: ToolRegistry) -> bool:
    names = registry.names()
    return 0 < len(names) <= MAX_SELECT_OPTIONS and all(len(n) <= MAX_OPTION_TEXT for n in names)


def panel_text(registry: ToolRegistry, guild: SessionSettings, channel: SessionSettings) -> str:
    text = tools_text(registry, guild, channel)
    if fits_a_select(registry):
        return text + "\nChoose below: each choice is saved at once."
    return text + (
        f"\nMore than {MAX_SELECT_OPTIONS} tools: name them with `/settings tools names:` "
        f"(comma-separated; `{NO_TOOLS}` for none, `{DEFAULT_TOOLS}` for the defaults). "
        f"All tools: {names_list(registry.names())}"
    )


def tool_names(text: str) -> list[str] | None:
    """The names typed into /settings tools: a comma-separated list, ``none`` (no tools) or
    ``default`` (None: the default ones)."""
    word = text.strip().lower()
    if word == NO_TOOLS:
        return []
    if word in (DEFAULT_TOOLS, "defaults"):
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InvalidRequestError(
            f"Name the tools separated by commas, or give `{NO_TOOLS}` or `{DEFAULT_TOOLS}`."
        )
    return names


class ToolsPanel(discord.ui.View):
    """The tools select and "Reset to defaults" of one admin's /settings tools. Each choice
    is saved at once, only for that admin and while they still have Manage Server."""

    def __init__(self, router: ConversationRouter, registry: ToolRegistry, place: Place,
                 admin_id: int, allowed: Iterable[str], key: int) -> None:  # fmt: skip
        super().__init__(timeout=PANEL_TIMEOUT)
        self.router, self.registry, self.place, self.admin_id = router, registry, place, admin_id
        # Ids unique to this panel (``key``): two admins' panels must not take each other's
        # clicks.
        self.select: discord.ui.Select[ToolsPanel] | None = None
        if fits_a_select(registry):
            on = set(allowed)
            options = [
                discord.SelectOption(
                    label=tool.name,
                    value=tool.name,
                    description=tool.description[:MAX_OPTION_TEXT] or None,
                    default=tool.name in on,
                )
                for tool in registry
            ]
            self.select = discord.ui.Select(
                custom_id=f"settings:tools:{key}",
                placeholder="Choose the tools the model may use here",
                min_values=0,
                max_values=len(options),
                options=options,
            )
            self.select.callback = self.chosen
            self.add_item(self.select)
        reset = discord.ui.Button(
            label="Reset to defaults", style=discord.ButtonStyle.secondary,
            custom_id=f"settings:tools-reset:{key}",
        )  # fmt: skip
        reset.callback = self.reset
        self.add_item(reset)

    async def allowed(self, interaction: discord.Interaction) -> bool:
        """Checked by each callback itself: the panel shows only to its admin, but anyone
        who has the message's ids can send a component interaction, and an admin may have
        lost Manage Server since opening it."""
        if interaction.user.id != self.admin_id:
            refusal = "Only the admin who opened this panel can use it."
        elif not interaction.permissions.manage_guild:
            refusal = "You need the Manage Server permission to choose the tools."
        else:
            return True
        log.info("refused a tools choice from user %s in %s", interaction.user.id, self.place)
        await interaction.response.send_message(refusal, ephemeral=True)
        return False

    async def chosen(self, interaction: discord.Interaction) -> None:
        if self.select is None or not await self.allowed(interaction):
            return
        _, channel = await self.router.channel_settings(self.place)
        # A down MCP server's tools are not in the select: their choice can't have changed.
        hidden = [name for name in channel.tools or () if name not in self.registry]
        await self.save(interaction, [*self.select.values, *hidden])

    async def reset(self, interaction: discord.Interaction) -> None:
        if await self.allowed(interaction):
            await self.save(interaction, None)

    async def save(self, interaction: discord.Interaction, names: list[str] | None) -> None:
        try:
            await self.router.set_tools(self.place, names)
        except OllacordError as exc:
            await interaction.response.send_message(explain(exc), ephemeral=True)
            return
        guild, channel = await self.router.channel_settings(self.place)
        if self.select is not None:
            on = set(allowed_tools(self.registry, guild, channel))
            for option in self.select.options:
                option.default = option.value in on
        text = SAVED + panel_text(self.registry, guild, channel)
        await interaction.response.edit_message(content=text, view=self)
