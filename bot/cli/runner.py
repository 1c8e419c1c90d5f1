"""`ollacord batch|bench|compare`: the runner (bot.core.runner) from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.cli.context import UsageError, open_manager
from bot.cli.output import Console, one_line
from bot.core.config import Settings
from bot.core.errors import InvalidRequestError
from bot.core.runner.batch import MAX_PROMPT_CHARS, parse_prompts, pending, run_batch
from bot.core.runner.bench import run_bench
from bot.core.runner.compare import check_models, run_compare
from bot.core.runner.jsonl import JsonlWriter, latest, read_records
from bot.core.runner.markdown import (
    batch_document,
    batch_markdown,
    bench_markdown,
    compare_markdown,
    figures_table,
)
from bot.core.runner.records import RunRecord
from bot.core.runner.reports import OutputManager, ReportPaths

log = logging.getLogger(__name__)

PROGRESS_BAR_WIDTH = 24
_CLEAR_TO_END = "\x1b[K"


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"argument {what}: there is no file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"argument {what}: cannot read {path}: {one_line(str(exc))}") from None


@dataclass(slots=True)
class BatchProgress:
    """A bar redrawn in place on a terminal's stderr; elsewhere one line per answer."""

    stream: TextIO
    total: int
    done: int = 0
    failed: int = 0

    def update(self, record: RunRecord) -> None:
        self.done += 1
        self.failed += not record.ok
        if self.stream.isatty():
            filled = round(self.done / self.total * PROGRESS_BAR_WIDTH)
            bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
            failed = f", {self.failed} failed" if self.failed else ""
            self.stream.write(f"\r[{bar}] {self.done}/{self.total}{failed}{_CLEAR_TO_END}")
        else:
            outcome = "ok" if record.ok else f"failed: {record.error}"
            self.stream.write(f"{self.done}/{self.total} line {record.index}: {outcome}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream.isatty() and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _saved(console: Console, paths: ReportPaths) -> None:
    console.note(f"result in {paths.json}, report in {paths.markdown}")


async def batch(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    prompts = parse_prompts(_read_text(args.prompts, "PROMPTS"))
    model = args.model or settings.default_model
    earlier = latest([r for r in read_records(args.out) if r.model == model])
    answered = {key for key, record in earlier.items() if record.ok}
    todo = pending(prompts, answered)
    if len(todo) < len(prompts):
        console.note(
            f"{len(prompts) - len(todo)} of {len(prompts)} prompts already answered in "
            f"{args.out}: skipped"
        )
    progress = BatchProgress(console.stderr, len(todo))
    fresh: list[RunRecord] = []
    with JsonlWriter(args.out) as writer:

        def keep(record: RunRecord) -> None:
            writer.write(record)
            fresh.append(record)
            progress.update(record)

        try:
            if todo:
                async with open_manager(settings, persistent=False) as manager:
                    await run_batch(
                        manager, todo, model, concurrency=args.concurrency, on_record=keep
                    )
        except (asyncio.CancelledError, KeyboardInterrupt):
            progress.finish()
            console.note(
                f"interrupted: {len(fresh)} of {len(todo)} answers saved in {args.out}; "
                "run the same command again to resume"
            )
            raise
        progress.finish()
    for record in fresh:
        earlier[(record.index, record.prompt)] = record
    keys = {p.key for p in prompts}
    records = sorted((r for k, r in earlier.items() if k in keys), key=lambda r: r.index)
    document = batch_document(model, str(args.prompts), str(args.out), records, len(prompts))
    paths = OutputManager(args.reports_dir).save(
        "batch", document, batch_markdown(document, records)
    )
    console.out(
        f"{document['answered']} of {len(prompts)} prompts answered by {model}, "
        f"{len(document['failed'])} failed; answers in {args.out}"
    )
    _saved(console, paths)
    return 1 if document["failed"] else 0


async def bench(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with open_manager(settings, persistent=False) as manager:
        result = await run_bench(manager, args.model, runs=args.runs)
    paths = OutputManager(args.reports_dir).save("bench", result.to_dict(), bench_markdown(result))
    console.out("\n".join(figures_table(result.figures)))
    if result.failures:
        console.note(f"{result.failures} of {len(result.records)} answers failed")
    _saved(console, paths)
    return 1 if result.failures == len(result.records) else 0


async def compare(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    try:
        models = check_models(args.models)
    except InvalidRequestError as exc:
        raise UsageError(f"argument MODEL: {exc.user_message}") from None
    prompt = (
        args.prompt if args.prompt is not None else _read_text(args.prompt_file, "--prompt-file")
    )
    if not prompt.strip():
        raise UsageError("argument --prompt: the question is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UsageError(f"argument --prompt: longer than {MAX_PROMPT_CHARS} characters")
    async with open_manager(settings, persistent=False) as manager:
        result = await run_compare(manager, models, prompt)
    markdown = compare_markdown(result)
    paths = OutputManager(args.reports_dir).save("compare", result.to_dict(), markdown)
    console.out(markdown.rstrip())
    for record in result.records:
        if not record.ok:
            console.note(f"{record.model}: {record.error}")
    _saved(console, paths)
    return 1 if len(result.missing) == len(result.records) else 0
