"""Running models outside a conversation: batches of prompts, benchmarks, comparisons.

Discord-free on purpose: the CLI (`ollacord batch|bench|compare`) uses it now, and the
Discord commands (/model compare, /model bench) are meant to reuse it as it is.
"""

from bot.core.runner.batch import BatchPrompt, PromptFileError, parse_prompts, run_batch
from bot.core.runner.bench import BENCH_PROMPTS, BenchResult, run_bench
from bot.core.runner.compare import MAX_COMPARE_MODELS, run_compare
from bot.core.runner.records import Asker, RunRecord, Stats
from bot.core.runner.reports import OutputManager, ReportPaths

__all__ = [
    "BENCH_PROMPTS",
    "MAX_COMPARE_MODELS",
    "Asker",
    "BatchPrompt",
    "BenchResult",
    "OutputManager",
    "PromptFileError",
    "ReportPaths",
    "RunRecord",
    "Stats",
    "parse_prompts",
    "run_batch",
    "run_bench",
    "run_compare",
]
