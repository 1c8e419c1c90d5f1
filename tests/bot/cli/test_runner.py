"""`ollacord batch|bench|compare` against the Ollama emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core.runner.jsonl import JsonlWriter, read_records
from bot.core.runner.records import RunRecord
from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.bot.core.runner.conftest import asked_prompts
from tests.emulators.ollama_server import OllamaEmulator

PROMPTS = "# questions\n" + "\n".join(f"question {n}" for n in range(1, 8)) + "\n"


def _reports(directory: Path, kind: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    [found] = sorted(directory.glob(f"{kind}-*.json"))
    return json.loads(found.read_text()), found.with_suffix(".md").read_text()


async def test_batch_with_concurrency_writes_jsonl_and_reports(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    ollama_emu.stall_before_first_token(0.2, count=3)
    run = await run_cli(
        "batch", "prompts.txt", "--model", "qwen3", "--concurrency", "3", "--out", "out.jsonl"
    )
    assert run.code == 0, run
    assert ollama_emu.max_active_seen == 3
    records = read_records(tmp_path / "out.jsonl")
    assert sorted(r.index for r in records) == list(range(2, 9))
    assert {r.model for r in records} == {"qwen3"}
    assert all(r.content == f"Echo: {r.prompt}" for r in records)
    # Not a terminal: one plain line per answer, no bar.
    assert "\r" not in run.err and run.err_lines[0].startswith("1/7 line ")
    assert "7 of 7 prompts answered by qwen3, 0 failed" in run.out
    document, markdown = _reports(tmp_path / "reports", "batch")
    assert document["answered"] == 7 and document["failed"] == []
    assert document["figures"]["tokens_per_second"]["count"] == 7
    assert "# Batch: qwen3" in markdown and "question 7" in markdown


async def test_batch_resumed_after_an_interruption(
    run_cli: RunCli, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    out = tmp_path / "out.jsonl"
    # What an interrupted run leaves: two answers, then a line cut short mid-write.
    with JsonlWriter(out) as writer:
        writer.write(RunRecord(2, "question 1", "llama3.2", content="earlier one"))
        writer.write(RunRecord(5, "question 4", "llama3.2", content="earlier four"))
    with out.open("a") as raw:
        raw.write('{"index": 3, "prompt": "quest')
    run = await run_cli("batch", "prompts.txt", "--out", "out.jsonl", "--concurrency", "2")
    assert run.code == 0, run
    assert "2 of 7 prompts already answered" in run.err
    assert sorted(asked_prompts(ollama_emu)) == [f"question {n}" for n in (2, 3, 5, 6, 7)]
    records = read_records(out)
    assert sorted(r.index for r in records) == list(range(2, 9))  # each prompt exactly once
    document, _ = _reports(tmp_path / "reports", "batch")
    assert document["answered"] == 7

    again = await run_cli("batch", "prompts.txt", "--out", "out.jsonl")
    assert again.code == 0, again
    assert "7 of 7 prompts already answered" in again.err
    assert len(asked_prompts(ollama_emu)) == 5  # nothing asked the second time


async def test_bench_prints_figures_and_writes_reports(run_cli: RunCli, tmp_path: Path) -> None:
    run = await run_cli("bench", "llama3.2", "--runs", "1", "--reports-dir", "out")
    assert run.code == 0, run
    assert "| tokens/s |" in run.out and "| load time (s) |" in run.out
    document, markdown = _reports(tmp_path / "out", "bench")
    assert document["model"] == "llama3.2" and document["failures"] == 0
    assert document["figures"]["total"]["count"] == len(document["records"])
    assert "# Benchmark: llama3.2" in markdown
    assert "result in out/bench-" in run.err


async def test_compare_with_one_model_missing(run_cli: RunCli, tmp_path: Path) -> None:
    run = await run_cli("compare", "llama3.2", "ghost", "qwen3", "--prompt", "Hi there")
    assert run.code == 0, run
    assert "## llama3.2" in run.out and "Echo: Hi there" in run.out
    assert any(line.startswith("ollacord: ghost: ") for line in run.err_lines)
    document, markdown = _reports(tmp_path / "reports", "compare")
    assert document["failed"] == ["ghost"]
    assert [r["model"] for r in document["records"]] == ["llama3.2", "ghost", "qwen3"]
    assert "Did not answer: `ghost`." in markdown


async def test_compare_reads_the_prompt_file(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("From a file\n")
    run = await run_cli("compare", "llama3.2", "qwen3", "--prompt-file", "q.txt")
    assert run.code == 0, run
    assert run.out.count("Echo: From a file") == 2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("batch", "missing.txt", "--out", "o.jsonl"), "there is no file missing.txt"),
        (("batch", "p.txt", "--out", "o.jsonl", "--concurrency", "0"), "between 1 and 16"),
        (("compare", "a", "b", "c", "d", "e", "--prompt", "hi"), "2 to 4 different models"),
        (("compare", "a", "a", "--prompt", "hi"), "(1 given)"),
        (("bench", "llama3.2", "--runs", "99"), "between 1 and 20"),
    ],
)
async def test_bad_input_is_one_usage_line(
    run_cli: RunCli, argv: tuple[str, ...], expected: str
) -> None:
    line = await run_cli(*argv)
    assert line.code == 2, line
    assert len(line.err_lines) == 1 and expected in line.err, line.err
    assert "Traceback" not in line.err


async def test_bench_of_a_missing_model_is_one_line(run_cli: RunCli) -> None:
    line = assert_one_line_error(await run_cli("bench", "ghost"))
    assert "`ghost`" in line and "ollacord models pull ghost" in line


async def test_an_empty_prompts_file_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("# nothing\n\n")
    line = assert_one_line_error(await run_cli("batch", "p.txt", "--out", "o.jsonl"))
    assert "no prompt" in line
