"""The embeds of /model compare and /model bench, from the runner's results: Discord's
size limits applied here, the wording and numbers from bot.presentation.runner_views."""

from __future__ import annotations

import io
from typing import Final

import discord

from bot.core.runner.bench import BENCH_PROMPTS
from bot.core.runner.benchmarks import BenchReport
from bot.core.runner.compare import CompareResult
from bot.core.runner.kept import KeptBench
from bot.core.runner.markdown import compare_markdown
from bot.presentation.runner_views import (
    bench_table,
    cut,
    quote,
    record_figures,
    stats_figures,
)

# Discord's limits: 6000 characters over all of a message's embeds, 4096 in a description.
EMBEDS_TOTAL_CHARS: Final = 6000
DESCRIPTION_CHARS: Final = 4096
CONTENT_CHARS: Final = 2000
TITLE_CHARS: Final = 100  # a model's name as an embed's title (Discord allows 256)
# An embed's title, figures and footer take at most this much; the answer has the rest.
EMBED_OVERHEAD_CHARS: Final = 300
QUESTION_CHARS: Final = 300  # the question quoted above the answers
COMPARE_FILE: Final = "comparison.md"
MISSING_COLOUR: Final = discord.Colour.red()


def answer_limit(models: int) -> int:
    """How long each answer may be for ``models`` embeds to fit in one message."""
    share = EMBEDS_TOTAL_CHARS // models - EMBED_OVERHEAD_CHARS
    return min(DESCRIPTION_CHARS, share)


def compare_message(result: CompareResult) -> tuple[str, list[discord.Embed], discord.File | None]:
    """The content (the question), one embed per model in the given order, and the full
    answers as a Markdown file when any answer had to be cut."""
    limit = answer_limit(len(result.records))
    embeds, any_cut = [], False
    for record in result.records:
        embed = discord.Embed(title=record.model[:TITLE_CHARS])
        if not record.ok:
            embed.colour = MISSING_COLOUR
            embed.description = f"⚠️ {record.error}"
            embeds.append(embed)
            continue
        embed.colour = discord.Colour.blurple()
        text, was_cut = cut(record.content or "*(empty answer)*", limit)
        any_cut |= was_cut
        embed.description = text
        for label, value in record_figures(record):
            embed.add_field(name=label, value=value)
        embeds.append(embed)
    answered = len(result.records) - len(result.missing)
    content = f"**Compared** ({answered} of {len(result.records)} answered): " + quote(
        result.prompt, QUESTION_CHARS
    )
    attachment = None
    if any_cut:
        data = compare_markdown(result).encode()
        attachment = discord.File(io.BytesIO(data), filename=COMPARE_FILE)
    return content[:CONTENT_CHARS], embeds, attachment


def _table_embed(title: str, runs: list[KeptBench], current: int | None) -> discord.Embed:
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    rows = bench_table(runs, current).splitlines()
    # Whole rows only: a cut code block would show half a line.
    while rows and len("\n".join(rows)) + len("```\n\n```") > DESCRIPTION_CHARS:
        rows.pop()
    embed.description = "```\n" + "\n".join(rows) + "\n```"
    return embed


def bench_embeds(report: BenchReport) -> list[discord.Embed]:
    """This run's averages and medians, then the table of it beside earlier runs."""
    result, kept = report.result, report.kept
    summary = discord.Embed(
        title=f"Benchmark: {kept.model}"[:TITLE_CHARS], colour=discord.Colour.green()
    )
    answers = len(result.records)
    summary.description = (
        f"{len(BENCH_PROMPTS)} fixed prompts × {result.runs} run(s), one at a time: "
        f"{answers - result.failures} of {answers} answered."
    )
    for label, value in stats_figures(result.figures):
        summary.add_field(name=label, value=value)
    summary.set_footer(text=f"Run #{kept.id} kept for this server")
    history = [kept, *report.earlier, *report.others]
    return [summary, _table_embed("Beside earlier runs", history, kept.id)]


def kept_embed(runs: list[KeptBench]) -> discord.Embed:
    """The newest kept run of each model benchmarked in the server."""
    if not runs:
        return discord.Embed(
            title="Kept benchmarks",
            description="No benchmark yet. Run one with `/model bench name:<model>`.",
            colour=discord.Colour.blurple(),
        )
    embed = _table_embed("Kept benchmarks (newest run of each model)", runs, None)
    embed.set_footer(text="Times are UTC. /model bench name:<model> runs a new one.")
    return embed
