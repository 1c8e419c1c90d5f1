"""The Markdown reports of batches, benchmarks and comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.core.runner.bench import BENCH_PROMPTS, BenchResult
from bot.core.runner.compare import CompareResult
from bot.core.runner.records import FIGURES, RunRecord, Stats, figures

MAX_CELL_CHARS = 300  # an answer in a Markdown table cell, before it is cut


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(text: str) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= MAX_CELL_CHARS else flat[: MAX_CELL_CHARS - 1] + "…"


FIGURE_LABELS = {
    "tokens_per_second": "tokens/s",
    "time_to_first_token": "time to first token (s)",
    "load_time": "load time (s)",
    "total": "total (s)",
}


def figures_table(figures: dict[str, Stats]) -> list[str]:
    lines = ["| figure | mean | median | answers |", "|---|---|---|---|"]
    for name in FIGURES:
        stats = figures[name]
        label = FIGURE_LABELS[name]
        lines.append(
            f"| {label} | {_number(stats.mean)} | {_number(stats.median)} | {stats.count} |"
        )
    return lines


def records_table(records: Sequence[RunRecord], first: str) -> list[str]:
    lines = [
        f"| {first} | tokens | tokens/s | first token (s) | load (s) | total (s) | answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        label = r.model if first == "model" else str(r.index)
        answer = _cell(r.content) if r.ok else f"**error:** {_cell(r.error or '')}"
        lines.append(
            f"| {label} | {r.tokens if r.tokens is not None else '-'} | "
            f"{_number(r.tokens_per_second, 1)} | {_number(r.time_to_first_token)} | "
            f"{_number(r.load_time)} | {_number(r.total)} | {answer} |"
        )
    return lines


def batch_document(
    model: str, source: str, output: str, records: Sequence[RunRecord], total: int
) -> dict[str, Any]:
    """The JSON summary of a batch (the records themselves are in the JSONL output)."""
    failed = [r.index for r in records if not r.ok]
    return {
        "kind": "batch",
        "model": model,
        "prompts_file": source,
        "output": output,
        "prompts": total,
        "answered": sum(r.ok for r in records),
        "failed": failed,
        "figures": {name: stats.to_dict() for name, stats in figures(records).items()},
    }


def batch_markdown(document: dict[str, Any], records: Sequence[RunRecord]) -> str:
    lines = [
        f"# Batch: {document['model']}",
        "",
        f"Prompts from `{document['prompts_file']}`, answers in `{document['output']}`: "
        f"{document['answered']} of {document['prompts']} answered, "
        f"{len(document['failed'])} failed.",
        "",
        *figures_table(figures(records)),
        "",
        "## Prompts",
        "",
        *records_table(records, "line"),
    ]
    return "\n".join(lines) + "\n"


def bench_markdown(result: BenchResult) -> str:
    lines = [
        f"# Benchmark: {result.model}",
        "",
        f"{len(BENCH_PROMPTS)} prompts, {result.runs} run(s) each, one at a time; "
        f"{result.failures} failed. Time to first token is the server's (load + prompt).",
        "",
        *figures_table(result.figures),
        "",
        "## Prompts",
        "",
        *(f"{n}. **{name}**: {text}" for n, (name, text) in enumerate(BENCH_PROMPTS, start=1)),
        "",
        "## Answers",
        "",
        *records_table(result.records, "prompt"),
    ]
    return "\n".join(lines) + "\n"


def compare_markdown(result: CompareResult) -> str:
    """Side by side: a column per model for the figures, then each answer in full."""
    records = result.records
    header = "| | " + " | ".join(f"`{r.model}`" for r in records) + " |"
    rows = [header, "|---|" + "---|" * len(records)]
    for name in FIGURES:
        cells = " | ".join(_number(getattr(r, name)) if r.ok else "-" for r in records)
        rows.append(f"| {FIGURE_LABELS[name]} | {cells} |")
    tokens = " | ".join(str(r.tokens) if r.tokens is not None else "-" for r in records)
    rows.append(f"| tokens | {tokens} |")
    lines = ["# Comparison", "", "> " + " ".join(result.prompt.split()), "", *rows, ""]
    if result.missing:
        names = ", ".join(f"`{m}`" for m in result.missing)
        lines += [f"Did not answer: {names}.", ""]
    for r in records:
        lines += [f"## {r.model}", ""]
        lines += [r.content.strip() if r.ok else f"**error:** {r.error}", ""]
    return "\n".join(lines)
