"""The batch runner against the Ollama emulator: bounded concurrency, resuming."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import OllamaRequestManager
from bot.core.runner.batch import (
    MAX_PROMPT_CHARS,
    PromptFileError,
    parse_prompts,
    pending,
    run_batch,
)
from bot.core.runner.jsonl import JsonlWriter, latest, read_records
from bot.core.runner.records import RunRecord
from tests.bot.core.runner.conftest import asked_prompts
from tests.emulators.ollama_server import OllamaEmulator


def test_prompts_skip_blank_lines_and_comments() -> None:
    prompts = parse_prompts("# header\nfirst\n\n  second  \n#another\nthird\n")
    assert [(p.index, p.text) for p in prompts] == [(2, "first"), (4, "second"), (6, "third")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("# only a comment\n\n", "no prompt"), ("x" * (MAX_PROMPT_CHARS + 1), "line 1 is longer")],
)
def test_refused_prompt_files(text: str, expected: str) -> None:
    with pytest.raises(PromptFileError, match=expected):
        parse_prompts(text)


async def test_concurrency_is_bounded(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    # The first answers wait before their first token: they are surely in flight together.
    ollama_emu.stall_before_first_token(0.2, count=3)
    prompts = parse_prompts("\n".join(f"question {n}" for n in range(8)))
    seen: list[RunRecord] = []
    records = await run_batch(manager, prompts, "llama3.2", concurrency=3, on_record=seen.append)
    assert ollama_emu.max_active_seen == 3
    assert [r.index for r in records] == list(range(1, 9))
    assert sorted(r.index for r in seen) == list(range(1, 9))
    assert all(r.ok and r.content == f"Echo: {r.prompt}" for r in records)
    assert all(r.tokens and r.total is not None for r in records)


async def test_a_failing_prompt_is_a_record_not_the_end(
    make_manager: object, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_retries=0)  # type: ignore[operator]
    await manager.start()
    ollama_emu.fail_next(1, status=400, error="bad request")
    prompts = parse_prompts("one\ntwo")
    records = await run_batch(manager, prompts, "llama3.2", concurrency=1, on_record=print)
    assert [r.ok for r in records] == [False, True]
    assert records[0].error and records[0].content == ""


async def test_resumed_after_an_interruption(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    prompts = parse_prompts("\n".join(f"question {n}" for n in range(1, 7)))
    two_saved = asyncio.Event()

    def save(writer: JsonlWriter, record: RunRecord) -> None:
        writer.write(record)
        if len(read_records(out)) == 2:
            # The next answer waits: the interruption finds it in flight.
            ollama_emu.stall_before_first_token(5.0)
            two_saved.set()

    with JsonlWriter(out) as writer:
        task = asyncio.create_task(
            run_batch(
                manager, prompts, "llama3.2", concurrency=1, on_record=lambda r: save(writer, r)
            )
        )
        await two_saved.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    first_run = read_records(out)
    assert len(first_run) == 2
    ollama_emu.clear_faults()
    ollama_emu.requests.clear()

    done = {k for k, r in latest(read_records(out)).items() if r.ok}
    todo = pending(prompts, done)
    with JsonlWriter(out) as writer:
        await run_batch(manager, todo, "llama3.2", concurrency=2, on_record=writer.write)

    assert sorted(asked_prompts(ollama_emu)) == sorted(p.text for p in todo)
    assert not {r.prompt for r in first_run} & set(asked_prompts(ollama_emu))
    final = read_records(out)
    assert sorted(r.index for r in final) == [p.index for p in prompts]  # each exactly once


def test_a_torn_last_line_is_ignored_and_not_appended_to(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    whole = RunRecord(1, "one", "llama3.2", content="Echo: one")
    with JsonlWriter(out) as writer:
        writer.write(whole)
    with out.open("a") as raw:
        raw.write('{"index": 2, "prompt": "tw')  # the interruption cut this one short
    assert read_records(out) == [whole]
    again = RunRecord(2, "two", "llama3.2", content="Echo: two")
    with JsonlWriter(out) as writer:
        writer.write(again)
    assert read_records(out) == [whole, again]
