"""/model list | info | set | pull | compare | bench: the server's models, which one a channel
uses, and the runner (bot.core.runner) for comparing and benchmarking them."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidRequestError
from bot.core.ollama_client import normalize_model_name
from bot.core.runner.batch import MAX_PROMPT_CHARS
from bot.core.runner.compare import run_compare
from bot.core.runner.limits import MAX_BENCH_RUNS
from bot.core.types import PullProgress
from bot.discord_app.replies import NO_MENTIONS
from bot.discord_app.routing import guild_key
from bot.discord_app.runner_embeds import bench_embeds, compare_message, kept_embed
from cogs.shared import model_choices, place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

# Pull progress is cosmetic: an edit per second is plenty and stays far from rate limits.
PULL_EDIT_INTERVAL = 1.0
PROGRESS_BAR_WIDTH = 20
MAX_LISTED_MODELS = 25
MAX_CHOICES = 25  # Discord's limit for autocomplete
# A string option holds 6000 characters on Discord; the runner takes up to 8000.
MAX_COMPARE_PROMPT_CHARS = min(6000, MAX_PROMPT_CHARS)
BENCH_EDIT_INTERVAL = 1.0  # progress edits of /model bench, as for pulls


def distinct_models(names: list[str | None]) -> list[str]:
    """The models given, in order; a name given twice (``qwen3`` is ``qwen3:latest``) is
    refused rather than quietly compared with itself."""
    chosen: dict[str, str] = {}
    for name in names:
        if name is None or not name.strip():
            continue
        key = normalize_model_name(name.strip())
        if key in chosen:
            raise InvalidRequestError(
                f"`{name.strip()}` is given twice; choose different models to compare."
            )
        chosen[key] = name.strip()
    if len(chosen) < 2:
        raise InvalidRequestError("Give at least two different models to compare.")
    return list(chosen.values())


def progress_bar(fraction: float) -> str:
    filled = round(fraction * PROGRESS_BAR_WIDTH)
    return "█" * filled + "░" * (PROGRESS_BAR_WIDTH - filled)


def short_host(label: str) -> str:
    """A host as members see it: its address without the scheme (never credentials)."""
    return label.split("://", 1)[-1]


def describe_pull(name: str, update: PullProgress) -> str:
    line = f"⬇️ Pulling `{name}`: {update.status}"
    if update.fraction is not None and update.total:
        done_mb, total_mb = (update.completed or 0) / 1e6, update.total / 1e6
        bar = progress_bar(update.fraction)
        line += f"\n`{bar}` {update.fraction:.0%} ({done_mb:,.0f} / {total_mb:,.0f} MB)"
    return line


class Models(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    model = app_commands.Group(name="model", description="Models on the Ollama server")

    async def _current(self, interaction: discord.Interaction) -> str:
        target = await self.bot.router.target(place_of(interaction))
        return target.model or self.bot.manager.default_model

    @model.command(name="list")
    async def list_models(self, interaction: discord.Interaction) -> None:
        """List the models the server has; the one this channel uses is marked."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        manager = self.bot.manager
        models = await manager.hosted_models(force_refresh=True)
        several = len(manager.host_labels) > 1
        current = normalize_model_name(await self._current(interaction))
        title = "Models on the servers" if several else "Models on the server"
        embed = discord.Embed(title=title, colour=discord.Colour.blurple())
        if not models:
            embed.description = "No models yet. An admin can add one with `/model pull`."
        lines = []
        for hosted in sorted(models, key=lambda h: h.info.name)[:MAX_LISTED_MODELS]:
            m = hosted.info
            mark = "▶️ " if normalize_model_name(m.name) == current else ""
            about = " · ".join(x for x in (m.parameter_size, m.quantization_level) if x)
            line = f"{mark}**{m.name}** {m.size_gb:.1f} GB" + (f" · {about}" if about else "")
            if several:
                line += " · on " + ", ".join(short_host(h) for h in hosted.hosts)
            lines.append(line)
        if lines:
            embed.description = "\n".join(lines)
        embed.set_footer(text=f"This channel uses {current}")
        await interaction.followup.send(embed=embed, ephemeral=True)

    @model.command(name="info")
    @app_commands.describe(name="The model")
    async def info(self, interaction: discord.Interaction, name: str) -> None:
        """Show a model's family, size, quantization, context length and capabilities."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        details = await self.bot.manager.show_model(name)
        embed = discord.Embed(title=details.name, colour=discord.Colour.blurple())
        for label, value in (
            ("Family", details.family),
            ("Parameters", details.parameter_size),
            ("Quantization", details.quantization_level),
            ("Context length", f"{details.context_length:,}" if details.context_length else None),
            ("Capabilities", ", ".join(details.capabilities) or None),
        ):
            embed.add_field(name=label, value=value or "unknown")
        await interaction.followup.send(embed=embed, ephemeral=True)

    @model.command(name="set")
    @app_commands.describe(
        name="The model to use", server_default="Make it the default for the whole server"
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_model(
        self, interaction: discord.Interaction, name: str, server_default: bool = False
    ) -> None:
        """Choose the model this channel (or the whole server) talks to."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        if not await self.bot.manager.is_model_available(name):
            raise InvalidRequestError(
                f"The server has no model `{name}`. See `/model list`, or `/model pull` it first."
            )
        place = place_of(interaction)
        await self.bot.router.set_model(place, name, guild_default=server_default)
        where = "this server's default" if server_default else "this channel's model"
        await interaction.followup.send(f"`{name}` is now {where}.", ephemeral=True)

    @model.command(name="pull")
    @app_commands.describe(
        name="The model to download, e.g. llama3.2 or qwen3:8b",
        host="With several Ollama servers: only this one (default: every server)",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def pull(
        self, interaction: discord.Interaction, name: str, host: str | None = None
    ) -> None:
        """Download a model to the Ollama server (or servers), showing progress."""
        if host is not None and host not in self.bot.manager.host_labels:
            raise InvalidRequestError(
                f"There is no Ollama server {host!r}; choose one of the suggestions."
            )
        await interaction.response.defer(thinking=True)
        last_edit = 0.0
        latest: PullProgress | None = None

        async def show(update: PullProgress) -> None:
            nonlocal last_edit, latest
            latest = update
            if time.monotonic() - last_edit >= PULL_EDIT_INTERVAL:
                last_edit = time.monotonic()
                await interaction.edit_original_response(
                    content=describe_pull(name, update), allowed_mentions=NO_MENTIONS
                )

        ok = await self.bot.manager.pull_model(name, progress=show, host=host)
        final = f"✅ `{name}` is ready." if ok else f"⚠️ The pull of `{name}` did not finish."
        if latest is not None and not ok:
            final += f" Last status: {latest.status}"
        await interaction.edit_original_response(content=final, allowed_mentions=NO_MENTIONS)

    @model.command(name="compare")
    @app_commands.describe(
        prompt="The question every model answers",
        first="A model",
        second="Another model",
        third="A third model (optional)",
        fourth="A fourth model (optional)",
    )
    async def compare(
        self,
        interaction: discord.Interaction,
        prompt: str,
        first: str,
        second: str,
        third: str | None = None,
        fourth: str | None = None,
    ) -> None:
        """Ask up to four models the same question and see their answers side by side."""
        models = distinct_models([first, second, third, fourth])
        if not prompt.strip():
            raise InvalidRequestError("The question is empty.")
        if len(prompt) > MAX_COMPARE_PROMPT_CHARS:
            raise InvalidRequestError(
                f"The question is too long ({len(prompt):,} characters; at most "
                f"{MAX_COMPARE_PROMPT_CHARS:,})."
            )
        await interaction.response.defer(thinking=True)
        result = await run_compare(self.bot.manager, models, prompt)
        content, embeds, attachment = compare_message(result)
        await interaction.followup.send(
            content,
            embeds=embeds,
            file=attachment or discord.utils.MISSING,
            allowed_mentions=NO_MENTIONS,
        )

    @model.command(name="bench")
    @app_commands.describe(
        name="The model to benchmark; leave empty to list this server's kept runs",
        runs="How many times each of the fixed prompts is asked (default 1)",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def bench(
        self,
        interaction: discord.Interaction,
        name: str | None = None,
        runs: app_commands.Range[int, 1, MAX_BENCH_RUNS] = 1,
    ) -> None:
        """Benchmark a model with fixed prompts and keep its figures (Manage Server)."""
        if interaction.guild_id is None:
            raise InvalidRequestError("Benchmarks are kept per server: run this in a server.")
        scope = guild_key(interaction.guild_id)
        benchmarks = self.bot.manager.benchmarks
        if name is None or not name.strip():
            await interaction.response.defer(ephemeral=True, thinking=True)
            embed = kept_embed(await benchmarks.kept(scope))
            await interaction.followup.send(embed=embed, ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        last_edit = 0.0

        async def show(number: int, total: int) -> None:
            nonlocal last_edit
            if number == 1 or time.monotonic() - last_edit >= BENCH_EDIT_INTERVAL:
                last_edit = time.monotonic()
                try:
                    await interaction.edit_original_response(
                        content=f"⏱️ Benchmarking `{name}`: prompt {number}/{total}…",
                        allowed_mentions=NO_MENTIONS,
                    )
                except discord.HTTPException as exc:  # progress is cosmetic: go on
                    log.debug("bench progress not shown: %s", exc)

        report = await benchmarks.run(
            scope, name.strip(), requested_by=interaction.user.id, runs=runs, on_prompt=show
        )
        await interaction.edit_original_response(
            content=None, embeds=bench_embeds(report), allowed_mentions=NO_MENTIONS
        )

    @pull.autocomplete("host")
    async def host_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = current.lower()
        return [
            app_commands.Choice(name=short_host(label), value=label)
            for label in self.bot.manager.host_labels
            if wanted in label.lower()
        ][:MAX_CHOICES]

    @info.autocomplete("name")
    @set_model.autocomplete("name")
    @bench.autocomplete("name")
    @compare.autocomplete("first")
    @compare.autocomplete("second")
    @compare.autocomplete("third")
    @compare.autocomplete("fourth")
    async def name_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await model_choices(self.bot, current)


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Models(bot))
