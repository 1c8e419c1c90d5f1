"""/persona: a server's named personas (a system prompt, and optionally a model, a preset, a
temperature and tools), and the one a channel answers as. Anyone may list them; creating,
editing, deleting and choosing one for a channel need Manage Server, checked here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidRequestError
from bot.core.personas import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    NO_PERSONA,
    UNCHANGED,
    Persona,
    persona_scope,
)
from bot.core.presets import PRESETS
from bot.discord_app.routing import MAX_SYSTEM_PROMPT_CHARS
from bot.discord_app.tools_panel import tool_names
from cogs.shared import MAX_AUTOCOMPLETE_CHOICES, persona_choices, place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

MAX_LIST_CHARS = 4000  # an embed's description holds 4096
MAX_PROMPT_SHOWN_CHARS = 80  # of each persona's system prompt in /persona list
MAX_TOOL_NAMES_CHARS = 1000
MAX_MODEL_CHARS = 200  # personas.model
NO_DESCRIPTION = "no description"
REMOVE = "none"  # typed as a model or description in /persona edit: remove it
PRESET_CHOICES = [
    *(app_commands.Choice(name=p.description, value=p.name) for p in PRESETS.values()),
    app_commands.Choice(name="None: no preset of its own", value=REMOVE),
]
NAME_DESCRIBED = "The persona's name"
DESCRIBED = {
    "system_prompt": "What the model is told to be and do when answering as this persona",
    "model": "The model it answers with (default: the channel's); in edit, none removes it",
    "preset": "A preset of options for its answers (options set here still win)",
    "temperature": "Creativity from 0 (focused) to 2 (wild)",
    "tools": "Tool names, comma-separated; none: no tools; default: the channel's tools",
    "description": "One line shown in /persona list; in edit, none removes it",
}


def scope_of(interaction: discord.Interaction) -> str:
    if interaction.guild_id is None:  # the group is guild_only; this is for type checkers
        raise InvalidRequestError("Personas belong to servers.")
    return persona_scope(interaction.guild_id)


def summary(persona: Persona) -> str:
    """One line of /persona list: what a persona sets beyond its system prompt."""
    parts = [f"`{persona.model}`" if persona.model else "the channel's model"]
    if persona.preset:
        parts.append(f"preset `{persona.preset}`")
    parts.extend(f"`{k}={v}`" for k, v in sorted(persona.options.items()))
    if persona.tools is not None:
        parts.append("tools: " + (", ".join(persona.tools) or "none"))
    return " · ".join(parts)


def list_text(personas: list[Persona], *, show_prompts: bool) -> str:
    """The personas, each with its description; with ``show_prompts`` (an admin asks), the
    start of the system prompt of those without one (a prompt is an admin's words)."""
    if not personas:
        return "This server has no personas yet. An admin can make one with `/persona create`."
    lines: list[str] = []
    for shown, persona in enumerate(personas):
        prompt = (persona.system_prompt or "").replace("\n", " ")
        if len(prompt) > MAX_PROMPT_SHOWN_CHARS:
            prompt = prompt[: MAX_PROMPT_SHOWN_CHARS - 1] + "…"
        about = persona.description or (f"“{prompt}”" if show_prompts else NO_DESCRIPTION)
        line = f"🎭 **{persona.name}**: {about}\n  {summary(persona)}"
        tail = f"…and {len(personas) - shown} more."
        if len("\n".join([*lines, line, tail])) > MAX_LIST_CHARS:
            lines.append(tail)
            break
        lines.append(line)
    return "\n".join(lines)


def channels_text(channel_ids: list[int]) -> str:
    return ", ".join(f"<#{c}>" for c in channel_ids)


class Personas(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    persona = app_commands.Group(
        name="persona",
        description="This server's personas: a system prompt, model and options to answer as",
        guild_only=True,
    )

    @persona.command(name="create")
    @app_commands.describe(name="A name: lower-case letters, digits, - or _", **DESCRIBED)
    @app_commands.choices(preset=PRESET_CHOICES[:-1])
    @app_commands.checks.has_permissions(manage_guild=True)
    async def create(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, MAX_NAME_CHARS],
        system_prompt: app_commands.Range[str, 1, MAX_SYSTEM_PROMPT_CHARS],
        model: app_commands.Range[str, 1, MAX_MODEL_CHARS] | None = None,
        preset: str | None = None,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        tools: app_commands.Range[str, 1, MAX_TOOL_NAMES_CHARS] | None = None,
        description: app_commands.Range[str, 1, MAX_DESCRIPTION_CHARS] | None = None,
    ) -> None:
        """Make a persona for this server (Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # a model is checked
        persona = await self.bot.router.personas.create(
            scope_of(interaction),
            name,
            system_prompt=system_prompt,
            description=description,
            model=model,
            preset=preset,
            options=None if temperature is None else {"temperature": temperature},
            tools=None if tools is None else tool_names(tools),
            created_by=interaction.user.id,
        )
        await interaction.followup.send(
            f"🎭 Persona `{persona.name}` created: {summary(persona)}. Use it in a channel "
            f"with `/persona use`, or for one question with `/ask persona:{persona.name}`.",
            ephemeral=True,
        )

    @persona.command(name="edit")
    @app_commands.describe(name=NAME_DESCRIBED, **DESCRIBED)
    @app_commands.choices(preset=PRESET_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def edit(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, MAX_NAME_CHARS],
        system_prompt: app_commands.Range[str, 1, MAX_SYSTEM_PROMPT_CHARS] | None = None,
        model: app_commands.Range[str, 1, MAX_MODEL_CHARS] | None = None,
        preset: str | None = None,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        tools: app_commands.Range[str, 1, MAX_TOOL_NAMES_CHARS] | None = None,
        description: app_commands.Range[str, 1, MAX_DESCRIPTION_CHARS] | None = None,
    ) -> None:
        """Change a persona: only the fields you give change (Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        personas, scope = self.bot.router.personas, scope_of(interaction)
        changes: dict[str, Any] = {
            "system_prompt": UNCHANGED if system_prompt is None else system_prompt,
            "model": _removable(model),
            "preset": _removable(preset),
            "description": _removable(description),
            "tools": UNCHANGED if tools is None else tool_names(tools),
        }
        if temperature is not None:
            current = await personas.find(scope, name)
            changes["options"] = {**current.options, "temperature": temperature}
        if all(value is UNCHANGED for value in changes.values()):
            raise InvalidRequestError("Give at least one field to change.")
        persona = await personas.edit(scope, name, **changes)
        await interaction.followup.send(
            f"🎭 Persona `{persona.name}` saved: {summary(persona)}.", ephemeral=True
        )

    @persona.command(name="list")
    async def list_personas(self, interaction: discord.Interaction) -> None:
        """List this server's personas."""
        personas = await self.bot.router.personas.list(scope_of(interaction))
        admin = interaction.permissions.manage_guild
        embed = discord.Embed(
            title=f"Personas ({len(personas)})",
            description=list_text(personas, show_prompts=admin),
            colour=discord.Colour.blurple(),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @persona.command(name="delete")
    @app_commands.describe(name=NAME_DESCRIBED)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def delete(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, MAX_NAME_CHARS]
    ) -> None:
        """Delete a persona; channels using it go back to their own settings (Manage Server)."""
        router = self.bot.router
        persona = await router.personas.delete(scope_of(interaction), name)
        guild = interaction.guild
        channels = [] if guild is None else [c.id for c in [*guild.channels, *guild.threads]]
        using = await router.drop_persona(channels, persona.name)
        said = f"🎭 Persona `{persona.name}` deleted."
        if using:
            said += (
                f" {channels_text(using)} answered as it: they answer with their own settings "
                "again."
            )
        await interaction.response.send_message(said, ephemeral=True)

    @persona.command(name="use")
    @app_commands.describe(name="The persona this channel answers as; none or empty: no persona")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def use(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, MAX_NAME_CHARS] | None = None,
    ) -> None:
        """Make this channel answer as a persona, or as itself again (Manage Server)."""
        persona = await self.bot.router.set_persona(place_of(interaction), name)
        if persona is None:
            said = "This channel answers with its own settings now (no persona)."
        else:
            said = (
                f"🎭 This channel now answers as `{persona.name}`: {summary(persona)}. Its "
                "model, preset, options, system prompt and tools win over the channel's; "
                "`/ask` options still win over it."
            )
        await interaction.response.send_message(said, ephemeral=True)

    @edit.autocomplete("name")
    @delete.autocomplete("name")
    async def name_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await persona_choices(self.bot, interaction, current)

    @use.autocomplete("name")
    async def use_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        choices = await persona_choices(self.bot, interaction, current)
        if current.strip().lower() in NO_PERSONA:
            none = app_commands.Choice(name="none: the channel's own settings", value=NO_PERSONA)
            choices = [none, *choices][:MAX_AUTOCOMPLETE_CHOICES]
        return choices


def _removable(value: str | None) -> Any:
    """A field of /persona edit: left out, ``none`` (removed) or a new value."""
    if value is None:
        return UNCHANGED
    return None if value.strip().lower() == REMOVE else value


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Personas(bot))
