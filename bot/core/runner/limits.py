"""The runner's bounds, in a module that imports nothing: the CLI's parser (built for every
--help) reads them without loading the runner, the request manager and the Ollama client."""

from typing import Final

MAX_CONCURRENCY: Final = 16  # a batch's prompts asked at once
MAX_BENCH_RUNS: Final = 20  # rounds of the bench's fixed prompts
# Side by side, more than four answers no longer fit a screen (or a Discord message).
MAX_COMPARE_MODELS: Final = 4
MIN_COMPARE_MODELS: Final = 2
