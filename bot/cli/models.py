"""`ollacord models list|show|pull`: what the Ollama server has, and downloads."""

from __future__ import annotations

import argparse
import logging

from bot.cli.context import CliError, open_manager
from bot.cli.output import Console, PullProgressPrinter, human_age, human_bytes, table
from bot.core.config import Settings

log = logging.getLogger(__name__)


async def list_models(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with open_manager(settings, persistent=False) as manager:
        models = await manager.hosted_models()
        several = len(manager.host_labels) > 1
    if not models:
        where = "the Ollama server at" if not several else "the Ollama servers"
        console.note(
            f"{where} {', '.join(h.label for h in settings.hosts)} has no models yet: "
            f"`ollacord models pull {settings.default_model}` downloads the default one"
        )
        return 0
    rows = []
    for hosted in models:
        m = hosted.info
        row = [
            m.name,
            human_bytes(m.size),
            human_age(m.modified_at),
            m.family or "-",
            m.parameter_size or "-",
            m.quantization_level or "-",
        ]
        if several:  # which servers have it; routing sends its questions there
            row.append(",".join(hosted.hosts))
        rows.append(row)
    header = ["NAME", "SIZE", "MODIFIED", "FAMILY", "PARAMS", "QUANTIZATION"]
    console.out(table([*header, "HOSTS"] if several else header, rows))
    return 0


async def show_model(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with open_manager(settings, persistent=False) as manager:
        details = await manager.show_model(args.name)
    fields = [
        ("name", details.name),
        ("family", details.family),
        ("parameters", details.parameter_size),
        ("quantization", details.quantization_level),
        ("context length", str(details.context_length) if details.context_length else None),
        ("capabilities", ", ".join(details.capabilities)),
    ]
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        console.out(f"{label + ':':<{width}} {value or '-'}")
    return 0


async def pull_model(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    printer = PullProgressPrinter(console.stderr, interactive=console.stderr.isatty())
    succeeded = False
    async with open_manager(settings, persistent=False) as manager:
        try:
            succeeded = await manager.pull_model(args.name, progress=printer.update, host=args.host)
        finally:
            printer.finish(succeeded)
    if not succeeded:
        raise CliError(f"The pull of `{args.name}` ended before the server reported success.")
    return 0
