"""`ollacord health`, `models list` and `models pull --host` with OLLAMA_HOSTS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.bot.cli.conftest import RunCli, assert_one_line_error
from tests.bot.core.hosts.conftest import only
from tests.emulators.ollama_models import EmulatedModel
from tests.emulators.ollama_server import OllamaEmulator

TINY = {"tinyllama:latest": EmulatedModel("tinyllama:latest", size=637_700_138)}


@pytest.fixture
async def hosts(
    cli_env: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[OllamaEmulator, OllamaEmulator]]:
    async with (
        OllamaEmulator(only("llama3.2", "qwen3"), pullable=TINY) as a,
        OllamaEmulator(only("qwen3"), pullable=TINY) as b,
    ):
        cli_env.setenv("OLLAMA_HOSTS", f"{a.url}*2,{b.url}")
        yield a, b


def lines_by_component(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines())


async def test_health_checks_each_host(
    run_cli: RunCli, hosts: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    a, b = hosts
    assert (await run_cli("migrate")).code == 0
    run = await run_cli("health")
    assert run.code == 0, run
    status = lines_by_component(run.out)
    assert list(status) == [
        "database",
        f"ollama {a.url}",
        f"ollama {b.url}",
        "ollama",
        "discord",
        "status",
    ]
    assert status[f"ollama {a.url}"].startswith(f"ok - {a.url}, version 0.12.6, ")
    assert status[f"ollama {a.url}"].endswith("2 models; default model `llama3.2` present")
    assert status[f"ollama {b.url}"].endswith("1 model; default model `llama3.2` not here")
    assert status["ollama"] == f"ok - 2 of 2 hosts answer; `llama3.2` on {a.url}"
    assert status["status"] == "healthy"


async def test_health_with_a_host_down_is_degraded_and_says_which(
    run_cli: RunCli, hosts: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    _, b = hosts
    b.refuse_connections()
    run = await run_cli("health")
    assert run.code == 1, run
    status = lines_by_component(run.out)
    assert status[f"ollama {b.url}"].startswith("FAILED - Cannot reach the model server")
    assert status["ollama"].startswith("FAILED - 1 of 2 hosts answer; `llama3.2` on ")
    assert status["status"] == "degraded"


async def test_health_when_no_host_has_the_default_model(
    run_cli: RunCli, hosts: tuple[OllamaEmulator, OllamaEmulator], cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("DEFAULT_MODEL", "ghost")
    run = await run_cli("health")
    assert run.code == 1, run
    summary = lines_by_component(run.out)["ollama"]
    assert "`ghost` is on none of them" in summary and "ollacord models pull ghost" in summary


async def test_models_list_names_the_hosts_of_each_model(
    run_cli: RunCli, hosts: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    a, b = hosts
    run = await run_cli("models", "list")
    assert run.code == 0, run
    header, *rows = run.out.splitlines()
    assert header.split() == [
        "NAME",
        "SIZE",
        "MODIFIED",
        "FAMILY",
        "PARAMS",
        "QUANTIZATION",
        "HOSTS",
    ]
    by_name = {row.split()[0]: row.split()[-1] for row in rows}
    assert by_name == {"llama3.2:latest": a.url, "qwen3:latest": f"{a.url},{b.url}"}


async def test_pull_to_one_host_or_every_host(
    run_cli: RunCli, hosts: tuple[OllamaEmulator, OllamaEmulator]
) -> None:
    a, b = hosts
    run = await run_cli("models", "pull", "tinyllama", "--host", b.url)
    assert run.code == 0, run
    assert ("tinyllama:latest" in a.models, "tinyllama:latest" in b.models) == (False, True)
    run = await run_cli("models", "pull", "tinyllama")
    assert run.code == 0, run
    assert "tinyllama:latest" in a.models
    line = assert_one_line_error(await run_cli("models", "pull", "x", "--host", "http://nope:1"))
    assert "no Ollama host 'http://nope:1'" in line
