"""The arguments of `ollacord batch|bench|compare` (the runner, bot.core.runner).

Nothing heavy is imported here: the parser is built for every --help.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.core.runner.limits import MAX_BENCH_RUNS, MAX_CONCURRENCY

DEFAULT_REPORTS_DIR = Path("reports")


def _bounded(high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between 1 and {high}, got {value}")
        return value

    return parse


def _reports_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS_DIR,
        metavar="DIR",
        help="where the JSON result and Markdown report go, named with the time "
        f"(default: ./{DEFAULT_REPORTS_DIR})",
    )


def add_runner(commands: argparse._SubParsersAction[argparse.ArgumentParser], handler: Any) -> None:
    """``handler(module, name)``: the parser's lazy import of a command's function."""
    batch = commands.add_parser(
        "batch",
        help="answer a file of prompts with one model (resumable)",
        description="Ask one model every prompt of a file (one per line; blank lines and # "
        "comments skipped). Each answer is appended to --out (JSONL) as soon as it is "
        "complete; run the same command again after an interruption and the prompts already "
        "answered there are skipped. Progress on stderr. Then a JSON summary and a Markdown "
        "report go to --reports-dir.",
    )
    batch.add_argument("prompts", type=Path, metavar="PROMPTS", help="the prompts file")
    batch.add_argument("-m", "--model", help="the model (default: DEFAULT_MODEL)")
    batch.add_argument(
        "--concurrency",
        type=_bounded(MAX_CONCURRENCY),
        default=1,
        help=f"prompts asked at the same time, 1 to {MAX_CONCURRENCY} (default 1; "
        "MAX_CONCURRENT_REQUESTS still bounds what reaches Ollama)",
    )
    batch.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="the JSONL output, appended to"
    )
    _reports_dir(batch)
    batch.set_defaults(handler=handler("runner", "batch"), subparser=batch)

    bench = commands.add_parser(
        "bench",
        help="benchmark a model on a fixed set of prompts",
        description="Ask a model a fixed set of prompts, one at a time, and report the mean "
        "and median tokens/s, time to first token, load time and total time (as the Ollama "
        "server measures them).",
    )
    bench.add_argument("model", metavar="MODEL", help="the model, e.g. llama3.2")
    bench.add_argument(
        "--runs",
        type=_bounded(MAX_BENCH_RUNS),
        default=1,
        help=f"how many times each prompt is asked, 1 to {MAX_BENCH_RUNS} (default 1)",
    )
    _reports_dir(bench)
    bench.set_defaults(handler=handler("runner", "bench"), subparser=bench)

    compare = commands.add_parser(
        "compare",
        help="ask two to four models the same question, side by side",
        description="Ask two to four models the same question; each answer and its figures "
        "side by side. A model that is missing or fails is reported as such while the "
        "others answer.",
    )
    compare.add_argument("models", nargs="+", metavar="MODEL", help="two to four models")
    source = compare.add_mutually_exclusive_group(required=True)
    source.add_argument("-p", "--prompt", metavar="TEXT", help="the question")
    source.add_argument(
        "--prompt-file", type=Path, metavar="FILE", help="read the question from this file"
    )
    _reports_dir(compare)
    compare.set_defaults(handler=handler("runner", "compare"), subparser=compare)
