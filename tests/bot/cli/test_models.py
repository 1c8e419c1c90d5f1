"""`ollacord models list|show|pull` against the Ollama emulator."""

from __future__ import annotations

import pytest

from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator


async def test_list_is_a_table_with_decimal_sizes(run_cli: RunCli) -> None:
    run = await run_cli("models", "list")
    assert run.code == 0, run
    header, *rows = run.out.splitlines()
    assert header.split() == ["NAME", "SIZE", "MODIFIED", "FAMILY", "PARAMS", "QUANTIZATION"]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {"llama3.2:latest", "qwen3:latest", "nomic-embed-text:latest"}
    # 2_019_393_189 and 5_225_387_923 bytes: decimal GB, as `ollama list` shows them
    assert "2.0 GB" in by_name["llama3.2:latest"]
    assert "5.2 GB" in by_name["qwen3:latest"]
    assert "274 MB" in by_name["nomic-embed-text:latest"]
    assert by_name["qwen3:latest"].split()[-3:] == ["qwen3", "8.2B", "Q4_K_M"]
    assert "ago" in by_name["qwen3:latest"]


async def test_list_of_an_empty_server(run_cli: RunCli, cli_env: pytest.MonkeyPatch) -> None:
    async with OllamaEmulator(models=[]) as empty:
        cli_env.setenv("OLLAMA_HOST", empty.url)
        run = await run_cli("models", "list")
    assert run.code == 0, run
    assert run.out == ""
    assert "no models yet" in run.err and "ollacord models pull llama3.2" in run.err


async def test_show_prints_the_details(run_cli: RunCli) -> None:
    run = await run_cli("models", "show", "qwen3")
    assert run.code == 0, run
    fields = dict(line.split(":", 1) for line in run.out.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["family"] == "qwen3"
    assert fields["parameters"] == "8.2B"
    assert fields["quantization"] == "Q4_K_M"
    assert fields["context length"] == "40960"
    assert fields["capabilities"] == "completion, tools, thinking"


async def test_show_unknown_model(run_cli: RunCli, ollama_emu: OllamaEmulator) -> None:
    line = assert_one_line_error(await run_cli("models", "show", "ghost"))
    assert "`ghost`" in line and ollama_emu.url in line


async def test_pull_shows_progress_and_installs(
    run_cli: RunCli, cli_env: pytest.MonkeyPatch
) -> None:
    pullable = {"tinyllama:latest": EmulatedModel("tinyllama:latest", size=637_700_138)}
    async with OllamaEmulator(pullable=pullable) as emu:
        cli_env.setenv("OLLAMA_HOST", emu.url)
        run = await run_cli("models", "pull", "tinyllama")
        assert "tinyllama:latest" in emu.models
    assert run.code == 0, run
    lines = run.err_lines
    # Not a terminal: one line per finished step, no carriage returns.
    assert "\r" not in run.err
    assert lines[0] == "pulling manifest"
    assert any(line.endswith("100% (637 MB / 637 MB)") for line in lines)
    assert lines[-1] == "success"
    assert len(lines) == len(set(lines))


async def test_pull_unknown_model_is_one_line(run_cli: RunCli) -> None:
    line = assert_one_line_error(await run_cli("models", "pull", "ghost"))
    assert "`ghost`" in line and "does not exist" in line


async def test_pull_refused_name_is_one_line(run_cli: RunCli) -> None:
    line = assert_one_line_error(await run_cli("models", "pull", "two words"))
    assert "not a valid model name" in line


async def test_models_needs_an_action(run_cli: RunCli) -> None:
    run = await run_cli("models")
    assert run.code == 2
    assert "usage: ollacord models" in run.err
