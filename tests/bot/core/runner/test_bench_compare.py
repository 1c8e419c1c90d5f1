"""Benchmarks and comparisons against the Ollama emulator; the output manager's files."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import OllamaRequestManager
from bot.core.errors import InvalidRequestError, ModelNotFoundError
from bot.core.runner.bench import BENCH_PROMPTS, run_bench
from bot.core.runner.compare import run_compare
from bot.core.runner.markdown import bench_markdown, compare_markdown
from bot.core.runner.reports import OutputManager
from tests.bot.core.runner.conftest import asked_prompts
from tests.emulators.ollama_server import OllamaEmulator

LOAD_DELAY = 0.05


async def test_bench_figures_come_from_the_reported_durations(
    make_manager: object,
) -> None:
    async with OllamaEmulator(load_delay=LOAD_DELAY, tokens_per_second=500) as emu:
        manager: OllamaRequestManager = make_manager(host=emu.url)  # type: ignore[operator]
        await manager.start()
        result = await run_bench(manager, "llama3.2", runs=2)
    assert asked_prompts(emu) == [text for _, text in BENCH_PROMPTS] * 2
    assert result.failures == 0 and len(result.records) == 2 * len(BENCH_PROMPTS)
    first = result.records[0]
    # The emulator's load_delay is the load_duration it reports for a cold model.
    assert first.load_time is not None and first.load_time >= LOAD_DELAY
    assert first.time_to_first_token is not None and first.time_to_first_token >= first.load_time
    figures = result.figures
    speeds = [r.tokens_per_second for r in result.records]
    assert figures["tokens_per_second"].mean == pytest.approx(statistics.fmean(speeds))
    assert figures["tokens_per_second"].median == pytest.approx(statistics.median(speeds))
    loads = [r.load_time for r in result.records]
    assert figures["load_time"].median == pytest.approx(statistics.median(loads))
    report = bench_markdown(result)
    assert "# Benchmark: llama3.2" in report and "| tokens/s |" in report


async def test_bench_of_a_missing_model_asks_nothing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    with pytest.raises(ModelNotFoundError):
        await run_bench(manager, "ghost")
    assert asked_prompts(ollama_emu) == []


async def test_compare_with_one_model_missing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    result = await run_compare(manager, ["llama3.2", "ghost", "qwen3"], "Why is the sky blue?")
    assert [r.model for r in result.records] == ["llama3.2", "ghost", "qwen3"]
    assert [r.ok for r in result.records] == [True, False, True]
    assert result.missing == ["ghost"]
    assert "`ghost`" in (result.records[1].error or "")
    assert result.records[0].content.startswith("Echo: Why is the sky blue?")
    report = compare_markdown(result)
    assert "| | `llama3.2` | `ghost` | `qwen3` |" in report
    assert "Did not answer: `ghost`." in report
    assert "## qwen3" in report


async def test_compare_refuses_more_than_four_models(manager: OllamaRequestManager) -> None:
    with pytest.raises(InvalidRequestError, match="2 to 4"):
        await run_compare(manager, ["a", "b", "c", "d", "e"], "hi")


def test_output_manager_never_overwrites(tmp_path: Path) -> None:
    fixed = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
    outputs = OutputManager(tmp_path / "reports", clock=lambda: fixed)
    first = outputs.save("bench", {"n": 1}, "# one\n")
    second = outputs.save("bench", {"n": 2}, "# two\n")
    assert first.json.name == "bench-20261201-030405.json"
    assert second.json.name == "bench-20261201-030405-2.json"
    assert json.loads(first.json.read_text()) == {"n": 1}
    assert second.markdown.read_text() == "# two\n"
