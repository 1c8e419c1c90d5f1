"""What each emulated model can do: /api/show's capabilities and the 400s that follow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.emulators import ollama_models as catalogue
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

USER_HI = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.fixture
async def client() -> AsyncIterator[ollama.AsyncClient]:
    models = [
        *catalogue.extended_models(),
        EmulatedModel("coder", capabilities=("completion", "insert")),
    ]
    async with OllamaEmulator(models) as emu, ollama.AsyncClient(host=emu.url, timeout=10) as api:
        yield api


async def test_show_lists_each_models_capabilities(client: ollama.AsyncClient) -> None:
    shown = {
        m.model: (await client.show(m.model or "")).capabilities
        for m in (await client.list()).models
    }
    assert shown == {
        "llama3.2:latest": ["completion", "tools"],
        "qwen3:latest": ["completion", "tools", "thinking"],
        "nomic-embed-text:latest": ["embedding"],
        "gemma3:latest": ["completion", "vision"],
        "mxbai-embed-large:latest": ["embedding"],
        "coder:latest": ["completion", "insert"],
    }


def test_the_default_catalogue_stays_as_it_was() -> None:
    # Tests elsewhere assert these three exactly; the vision model is opt-in.
    names = [m.name for m in catalogue.default_models()]
    assert names == ["llama3.2:latest", "qwen3:latest", "nomic-embed-text:latest"]
    extra = [m.name for m in catalogue.extended_models()][3:]
    assert extra == ["gemma3:latest", "mxbai-embed-large:latest"]


def test_unknown_capabilities_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown capabilities"):
        EmulatedModel("m", capabilities=("completion", "telepathy"))


async def test_a_suffix_needs_insert(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.generate("llama3.2", "def add(a, b):", suffix="return c")
    assert (caught.value.status_code, caught.value.error) == (
        400,
        "registry.ollama.ai/library/llama3.2:latest does not support insert",
    )
    assert (await client.generate("coder", "def add(a, b):", suffix="return c")).done


async def test_thinking_is_checked_first(client: ollama.AsyncClient) -> None:
    # ChatHandler refuses think before scheduleRunner checks completion and tools.
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat("nomic-embed-text", USER_HI, think=True, tools=[])
    assert caught.value.error == '"nomic-embed-text" does not support thinking'


async def test_think_levels_are_for_gpt_oss_only(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat("qwen3", USER_HI, think="high")
    assert (caught.value.status_code, caught.value.error) == (
        400,
        'think value "high" is not supported for this model',
    )
    with pytest.raises(ollama.ResponseError) as level_without_thinking:
        await client.chat("llama3.2", USER_HI, think="low")
    assert level_without_thinking.value.error == '"llama3.2" does not support thinking'
    # GenerateHandler looks at the level before the capabilities.
    with pytest.raises(ollama.ResponseError) as generated:
        await client.generate("llama3.2", "hi", think="low")
    assert generated.value.error == 'think value "low" is not supported for this model'


async def test_unloading_needs_no_capability(client: ollama.AsyncClient) -> None:
    # An empty chat with keep_alive 0 unloads before any capability is checked.
    await client.embed("nomic-embed-text", "x")
    unloaded = await client.chat("nomic-embed-text", [], keep_alive=0)
    assert unloaded.done_reason == "unload"
    with pytest.raises(ollama.ResponseError, match="does not support chat"):
        await client.chat("nomic-embed-text", [])  # loading is not unloading


async def test_a_think_value_go_cannot_bind_is_a_400() -> None:
    async with OllamaEmulator() as emu, httpx.AsyncClient(base_url=emu.url, timeout=10) as http:
        body = {"model": "qwen3", "messages": USER_HI}
        extreme = await http.post("/api/chat", json={**body, "think": "extreme"})
        number = await http.post("/api/chat", json={**body, "think": 1})
    choices = '"high", "medium", "low", true, or false'
    assert (extreme.status_code, extreme.json()) == (
        400,
        {"error": f'invalid think value: "extreme" (must be {choices})'},
    )
    assert number.json() == {"error": f"think must be a boolean or string ({choices})"}


async def test_capability_errors_are_400() -> None:
    tiny = EmulatedModel("tiny")  # completion only
    models = [tiny, EmulatedModel("embedder", capabilities=("embedding",))]
    async with (
        OllamaEmulator(models) as emu,
        ollama.AsyncClient(host=emu.url, timeout=10) as client,
    ):
        with pytest.raises(ollama.ResponseError) as think:
            await client.chat("tiny", USER_HI, think=True)
        with pytest.raises(ollama.ResponseError) as tools:
            await client.chat("tiny", USER_HI, tools=[WEATHER_TOOL])
        with pytest.raises(ollama.ResponseError) as chat:
            await client.chat("embedder", USER_HI)
        # think=False is allowed on any model
        assert (await client.chat("tiny", USER_HI, think=False)).message.content == "Echo: hi"
    assert (think.value.status_code, think.value.error) == (400, '"tiny" does not support thinking')
    assert tools.value.status_code == 400
    assert tools.value.error == "registry.ollama.ai/library/tiny:latest does not support tools"
    assert (chat.value.status_code, chat.value.error) == (400, '"embedder" does not support chat')
