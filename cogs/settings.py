"""/settings: each channel's scope, system prompt, options, preset, keep-alive and tools, and
where each setting in effect comes from. Every subcommand needs Manage Server, checked here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.presets import PRESETS, effective_options, get_preset
from bot.core.queries import MAX_KNOWLEDGE_PASSAGES
from bot.core.types import Scope
from bot.discord_app.routing import MAX_SYSTEM_PROMPT_CHARS, guild_key
from bot.discord_app.settings_text import (
    THREADS_CHOICES,
    describe_options,
    describe_threads,
    describe_window,
    option_layers,
)
from bot.discord_app.tools_panel import (
    DEFAULT_TOOLS,
    NO_TOOLS,
    SAVED,
    ToolsPanel,
    allowed_tools,
    origin,
    panel_text,
    tool_names,
    tools_text,
)
from bot.storage import SessionSettings
from cogs.shared import MAX_AUTOCOMPLETE_CHOICES, place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

MAX_CHOICE_VALUE = 100  # an autocomplete choice's value
MAX_FIELD_CHARS = 1024  # an embed field's value
MAX_TOOL_NAMES_CHARS = 2000  # the comma-separated names of /settings tools
MAX_KEEP_ALIVE_CHARS = 32
NO_PRESET = "none"
PRESET_CHOICES = [
    *(app_commands.Choice(name=p.description, value=p.name) for p in PRESETS.values()),
    app_commands.Choice(name="None: no preset for this channel", value=NO_PRESET),
]

KNOWLEDGE_CHOICES = [
    app_commands.Choice(name="On: answers use the server's knowledge base", value="on"),
    app_commands.Choice(name="Off: answers here ignore it", value="off"),
    app_commands.Choice(name="Default: the server's choice (on)", value="default"),
]
KNOWLEDGE_SWITCH = {"on": True, "off": False, "default": None}


def describe_knowledge(
    guild: SessionSettings, channel: SessionSettings, default_passages: int, documents: int
) -> str:
    """Whether answers here use the knowledge base, with how many passages, and where each
    choice comes from."""
    switch = channel.knowledge if channel.knowledge is not None else guild.knowledge
    state = "off" if switch is False else "on"
    where = origin(channel.knowledge, guild.knowledge, "the default")
    passages = channel.knowledge_passages or guild.knowledge_passages or default_passages
    came = origin(channel.knowledge_passages, guild.knowledge_passages, "KNOWLEDGE_PASSAGES")
    base = f"{documents} documents" if documents else "no documents yet (`/kb add`)"
    return f"{state} ({where}), up to {passages} passages a question ({came}); {base}"


MEMBER_NOTES_CHOICES = [
    app_commands.Choice(name="On: members can ask it to remember facts about them", value="on"),
    app_commands.Choice(name="Off: no notes stored or used (stored ones are kept)", value="off"),
]
NO_SUMMARY = "none yet: made when the conversation outgrows its history window"
PERSONA_NOTE = (
    "🎭 `{}` (`/persona use`): its model, preset, options, system prompt and tools win over "
    "the ones above (`/persona list` shows them)"
)


def describe_member_notes(guild: SessionSettings) -> str:
    if guild.member_notes:
        return (
            "on in this server: the model may remember facts a member asks it to (the "
            "`remember` tool), and each member's notes go with their questions; members see "
            "and delete theirs with `/memory show` and `/memory forget`"
        )
    return (
        "off in this server: no notes are stored or used (those stored are kept until "
        "`/memory purge` or their members delete them)"
    )


class Settings(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    settings = app_commands.Group(
        name="settings",
        description="This channel's conversation settings",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @settings.command(name="show")
    # The system prompt is an admin's words: members see the model in each answer's footer.
    @app_commands.checks.has_permissions(manage_guild=True)
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's settings and where each one comes from."""
        # The context window needs the model's maximum from Ollama, which may be slow.
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild, channel = await self.bot.router.channel_settings(place_of(interaction))
        manager = self.bot.manager
        embed = discord.Embed(title="Conversation settings", colour=discord.Colour.blurple())
        embed.add_field(name="Scope", value=channel.scope or Scope.CHANNEL.value)
        model = channel.model or guild.model or manager.default_model
        embed.add_field(name="Model", value=f"`{model}` ({origin(channel.model, guild.model)})")
        preset = channel.preset or guild.preset
        shown = f"`{preset}` ({origin(channel.preset, guild.preset)})" if preset else "none"
        embed.add_field(name="Preset", value=shown)
        keep_alive = channel.keep_alive or guild.keep_alive or manager.keep_alive
        where = origin(channel.keep_alive, guild.keep_alive)
        embed.add_field(name="Keep-alive", value=f"`{keep_alive}` ({where})")
        tools = tools_text(manager.tools, guild, channel)
        if "tools" not in (await manager.catalog.capabilities(model) or ("tools",)):
            tools += f"\n`{model}` cannot call tools: its answers use none."
        embed.add_field(name="Tools", value=tools[:MAX_FIELD_CHARS], inline=False)
        documents = await manager.knowledge.list(guild_key(interaction.guild_id or 0))
        knowledge = describe_knowledge(guild, channel, manager.knowledge_passages, len(documents))
        embed.add_field(name="Knowledge base", value=knowledge, inline=False)
        prompt = channel.system_prompt or guild.system_prompt or manager.default_system_prompt
        embed.add_field(name="System prompt", value=(prompt or "none")[:1024], inline=False)
        if channel.persona:
            note = PERSONA_NOTE.format(channel.persona)
            embed.add_field(name="Persona", value=note, inline=False)
        if channel.scope == Scope.USER:
            summary = "each member's conversation here keeps its own"
        else:
            summary = channel.summary or NO_SUMMARY
        if len(summary) > MAX_FIELD_CHARS:
            summary = summary[: MAX_FIELD_CHARS - 1] + "…"
        embed.add_field(name="Running summary", value=summary, inline=False)
        notes = "on" if guild.member_notes else "off"
        embed.add_field(name="Members' notes", value=f"{notes}, server-wide (`/settings memory`)")
        embed.add_field(name="Threads", value=describe_threads(channel), inline=False)
        defaults = manager.generation_defaults.to_options()
        effective = effective_options(option_layers(guild, channel, defaults))
        window = await manager.context_window(model, effective.get("num_ctx", (None,))[0])
        lines = [f"`{name}={value}` ({layer})" for name, (value, layer) in effective.items()]
        text = "\n".join(lines) or "none chosen: the model's own defaults"
        embed.add_field(
            name="Options", value=(text + describe_window(window))[:MAX_FIELD_CHARS], inline=False
        )
        await interaction.followup.send(embed=embed, ephemeral=True)

    @settings.command(name="scope")
    @app_commands.describe(scope="One conversation for the channel, or one per member")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def scope(self, interaction: discord.Interaction, scope: Scope) -> None:
        """Share one conversation in this channel, or keep one per member."""
        await self.bot.router.set_scope(place_of(interaction), scope)
        kept = "one conversation per member" if scope is Scope.USER else "one shared conversation"
        await interaction.response.send_message(f"This channel now keeps {kept}.", ephemeral=True)

    @settings.command(name="system")
    @app_commands.describe(prompt="The system prompt; leave empty to remove it")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def system(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_SYSTEM_PROMPT_CHARS] | None = None,
    ) -> None:
        """Set the system prompt the model gets in this channel."""
        await self.bot.router.set_system_prompt(place_of(interaction), prompt)
        said = "removed" if prompt is None else "set"
        await interaction.response.send_message(f"System prompt {said}.", ephemeral=True)

    @settings.command(name="options")
    @app_commands.describe(
        temperature="Creativity, 0 to 2",
        top_p="Nucleus sampling, 0 to 1",
        top_k="Top-k sampling",
        num_ctx="Context window in tokens",
        num_predict="Longest answer in tokens (-1: no limit)",
        repeat_penalty="Penalty for repeating, e.g. 1.1",
        seed="Fixed seed for reproducible answers",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def options(
        self,
        interaction: discord.Interaction,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        top_p: app_commands.Range[float, 0.0, 1.0] | None = None,
        top_k: app_commands.Range[int, 1, 1000] | None = None,
        num_ctx: app_commands.Range[int, 256, 1_048_576] | None = None,
        num_predict: app_commands.Range[int, -1, 100_000] | None = None,
        repeat_penalty: app_commands.Range[float, 0.0, 10.0] | None = None,
        seed: int | None = None,
    ) -> None:
        """Set generation options for this channel (only the ones you give change)."""
        given = {
            k: v
            for k, v in {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "num_ctx": num_ctx,
                "num_predict": num_predict,
                "repeat_penalty": repeat_penalty,
                "seed": seed,
            }.items()
            if v is not None
        }
        options = await self.bot.router.set_options(place_of(interaction), given)
        await interaction.response.send_message(
            f"Options now: {describe_options(options)}.", ephemeral=True
        )

    @settings.command(name="preset")
    @app_commands.describe(name="The preset; None removes this channel's preset")
    @app_commands.choices(name=PRESET_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def preset(self, interaction: discord.Interaction, name: str) -> None:
        """Give this channel a preset of options (options set here still win over it)."""
        chosen = await self.bot.router.set_preset(
            place_of(interaction), None if name == NO_PRESET else name
        )
        if chosen is None:
            said = "This channel has no preset of its own now."
        else:
            preset = get_preset(chosen)
            said = (
                f"This channel's preset is now `{chosen}`: "
                f"{describe_options(dict(preset.options))}, up to {preset.timeout:g} s an "
                "answer. Options set with `/settings options` still win over it."
            )
        await interaction.response.send_message(said, ephemeral=True)

    @settings.command(name="keep_alive")
    @app_commands.describe(
        value="Like 5m, 1h or 1h30m, or seconds; 0 unloads after each answer, -1 keeps it loaded"
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def keep_alive(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[str, 1, MAX_KEEP_ALIVE_CHARS] | None = None,
    ) -> None:
        """How long the model stays loaded after an answer here; leave empty for the default."""
        stored = await self.bot.router.set_keep_alive(place_of(interaction), value)
        if stored is None:
            said = "This channel uses the default keep-alive again."
        else:
            said = f"The model now stays loaded for `{stored}` after each answer here."
            if stored == "-1":
                said = "The model now stays loaded after answers here until Ollama stops."
            elif stored.strip("0") == "":
                said = "The model is now unloaded right after each answer here."
        await interaction.response.send_message(said, ephemeral=True)

    @settings.command(name="tools")
    @app_commands.describe(
        names="Tool names, comma-separated (needed past 25 tools); none: no tools; default"
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def tools(
        self,
        interaction: discord.Interaction,
        names: app_commands.Range[str, 1, MAX_TOOL_NAMES_CHARS] | None = None,
    ) -> None:
        """Choose the tools the model may use in this channel."""
        place = place_of(interaction)
        router, registry = self.bot.router, self.bot.manager.tools
        if names is not None:
            await router.set_tools(place, tool_names(names))
        guild, channel = await router.channel_settings(place)
        text = (SAVED if names is not None else "") + panel_text(registry, guild, channel)
        allowed = allowed_tools(registry, guild, channel)
        view = ToolsPanel(router, registry, place, interaction.user.id, allowed, interaction.id)
        await interaction.response.send_message(text, view=view, ephemeral=True)

    @tools.autocomplete("names")
    async def tool_names_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Completes the last of the names typed."""
        if not interaction.permissions.manage_guild:
            return []
        head, comma, last = current.rpartition(",")
        prefix = f"{head.strip()}, " if comma else ""
        names = self.bot.manager.tools.names()
        needle = last.strip().lower()
        values = [prefix + n for n in ([] if comma else [NO_TOOLS, DEFAULT_TOOLS]) + names]
        found = [v for v in values if needle in v[len(prefix) :].lower()]
        return [app_commands.Choice(name=v, value=v) for v in found if len(v) <= MAX_CHOICE_VALUE][
            :MAX_AUTOCOMPLETE_CHOICES
        ]

    @settings.command(name="knowledge")
    @app_commands.describe(
        use="Whether answers here use the server's knowledge base",
        passages=f"Passages a question gets, 1 to {MAX_KNOWLEDGE_PASSAGES}; 0: the default",
    )
    @app_commands.choices(use=KNOWLEDGE_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def knowledge(
        self,
        interaction: discord.Interaction,
        use: str | None = None,
        passages: app_commands.Range[int, 0, MAX_KNOWLEDGE_PASSAGES] | None = None,
    ) -> None:
        """Whether answers in this channel use the knowledge base, and with how many passages."""
        place = place_of(interaction)
        router, manager = self.bot.router, self.bot.manager
        changes: dict[str, Any] = {}
        if use is not None:
            changes["enabled"] = KNOWLEDGE_SWITCH[use]
        if passages is not None:
            changes["passages"] = passages or None
        if changes:
            await router.set_knowledge(place, **changes)
        guild, channel = await router.channel_settings(place)
        documents = await manager.knowledge.list(guild_key(interaction.guild_id or 0))
        text = describe_knowledge(guild, channel, manager.knowledge_passages, len(documents))
        said = (SAVED if changes else "") + f"Knowledge base here: {text}."
        await interaction.response.send_message(said, ephemeral=True)

    @settings.command(name="memory")
    @app_commands.describe(notes="Whether members' notes are kept in this whole server")
    @app_commands.choices(notes=MEMBER_NOTES_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def memory(self, interaction: discord.Interaction, notes: str | None = None) -> None:
        """Turn members' notes (facts they ask the bot to remember) on or off server-wide."""
        key = guild_key(interaction.guild_id or 0)  # the group is guild_only
        manager = self.bot.manager
        if notes is None:
            guild = (await manager.store.settings_of([key])).get(key, SessionSettings())
        else:
            guild = await manager.update_session_settings(key, member_notes=notes == "on")
        said = (SAVED if notes is not None else "") + "Members' notes are "
        await interaction.response.send_message(
            said + describe_member_notes(guild) + ".", ephemeral=True
        )

    @settings.command(name="threads")
    @app_commands.describe(answers="Whether every question here gets a thread of its own")
    @app_commands.choices(answers=THREADS_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def threads(self, interaction: discord.Interaction, answers: str | None = None) -> None:
        """Answer every question in this channel in a thread of its own, or in the channel."""
        place = place_of(interaction)
        if answers is not None:
            await self.bot.router.set_threads(place, answers == "on")
        _, channel = await self.bot.router.channel_settings(place)
        said = (SAVED if answers else "") + f"Threads here: {describe_threads(channel)}."
        await interaction.response.send_message(said, ephemeral=True)

    @settings.command(name="reset")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset_settings(self, interaction: discord.Interaction) -> None:
        """Put this channel's settings back to the defaults (the conversation is kept)."""
        await self.bot.router.reset_settings(place_of(interaction))
        await interaction.response.send_message(
            "This channel's settings are back to the defaults.", ephemeral=True
        )


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Settings(bot))
