"""The model catalog over several hosts: the union with hosts per model, pulls to one host
or all, health per host."""

from __future__ import annotations

import pytest

from bot.core.errors import InvalidRequestError, OllamaServerError
from bot.core.types import PullProgress
from tests.bot.core.hosts.conftest import host_of, only, spread_over
from tests.emulators.ollama_models import EmulatedModel
from tests.emulators.ollama_server import OllamaEmulator

TINY = {"tinyllama:latest": EmulatedModel("tinyllama:latest", size=637_700_138)}


async def test_the_list_is_the_union_with_the_hosts_of_each_model() -> None:
    async with (
        OllamaEmulator(only("llama3.2", "qwen3")) as a,
        OllamaEmulator(only("qwen3", "nomic-embed-text")) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        hosted = {m.info.name: m.hosts for m in await manager.hosted_models()}
        names = [m.name for m in await manager.list_models()]
        assert await manager.is_model_available("nomic-embed-text")
        details = await manager.show_model("nomic-embed-text")  # only b can tell
    assert hosted == {
        "llama3.2:latest": (a.url,),
        "qwen3:latest": (a.url, b.url),
        "nomic-embed-text:latest": (b.url,),
    }
    assert names == ["llama3.2:latest", "qwen3:latest", "nomic-embed-text:latest"]
    assert details.capabilities == ("embedding",)


async def test_a_host_that_is_down_leaves_the_others_listed() -> None:
    async with (
        OllamaEmulator(only("llama3.2")) as a,
        OllamaEmulator(only("qwen3")) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        a.refuse_connections()
        hosted = {m.info.name: m.hosts for m in await manager.hosted_models(force_refresh=True)}
    assert hosted == {"qwen3:latest": (b.url,)}


async def test_a_pull_goes_to_every_host_one_after_the_other() -> None:
    async with (
        OllamaEmulator(pullable=TINY) as a,
        OllamaEmulator(pullable=TINY) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        updates: list[PullProgress] = []
        assert await manager.pull_model("tinyllama", progress=updates.append)
        placed = [host_of(manager, e).has("tinyllama") for e in (a, b)]
        hosted = {m.info.name: m.hosts for m in await manager.hosted_models()}
    assert "tinyllama:latest" in a.models and "tinyllama:latest" in b.models
    assert placed == [True, True]  # routing knows at once
    assert hosted["tinyllama:latest"] == (a.url, b.url)
    hosts_in_order = [u.status.split(": ", 1)[0] for u in updates]
    assert hosts_in_order == sorted(hosts_in_order, key=[a.url, b.url].index)
    assert {f"{a.url}: success", f"{b.url}: success"} <= {u.status for u in updates}


async def test_a_pull_to_one_host_leaves_the_other_alone() -> None:
    async with (
        OllamaEmulator(pullable=TINY) as a,
        OllamaEmulator(pullable=TINY) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        updates: list[PullProgress] = []
        assert await manager.pull_model("tinyllama", progress=updates.append, host=b.url)
        with pytest.raises(InvalidRequestError, match="no Ollama host"):
            await manager.pull_model("tinyllama", host="http://nowhere:11434")
    assert "tinyllama:latest" in b.models and "tinyllama:latest" not in a.models
    assert updates[-1].status == "success"  # one host: its own words, as ever


async def test_a_pull_that_fails_on_one_host_names_it() -> None:
    async with (
        OllamaEmulator() as a,  # cannot find tinyllama
        OllamaEmulator(pullable=TINY) as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        with pytest.raises(OllamaServerError) as caught:
            await manager.pull_model("tinyllama")
    assert "tinyllama:latest" in b.models
    message = caught.value.user_message
    assert f"ready on {b.url}, but not on {a.url}" in message
    assert "file does not exist" in message


async def test_health_is_up_while_one_host_answers_and_names_the_others() -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(None, [(a, None), (b, None)]) as manager,
    ):
        b.refuse_connections()
        health = await manager.health_check()
        reports = {r.host: r for r in manager.host_reports()}
        a.refuse_connections()
        down = await manager.health_check()
    assert health.ok and health.version == a.version
    assert health.error is not None and b.url in health.error and "1 of 2" in health.error
    assert reports[a.url].health is not None and reports[a.url].health.ok
    assert reports[b.url].health is not None and not reports[b.url].health.ok
    assert not down.ok and "2 of 2 hosts down" in (down.error or "")
