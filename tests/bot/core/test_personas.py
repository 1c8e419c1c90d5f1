"""PersonaService: what a persona may hold is checked before it is stored (name, system
prompt, options as a channel's are, known tools, a model Ollama has, the per-server cap), and
edits change only the fields given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core.errors import InvalidRequestError
from bot.core.personas import MAX_PERSONAS, UNCHANGED, PersonaService, checked_name
from bot.core.tools.registry import Tool, ToolRegistry
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.personas import PersonaStore

SCOPE = "guild:1"
MAX_PROMPT = 50
MODELS = {"qwen3", "llama3.2"}


async def handler(_arguments: dict[str, Any], _context: object) -> str:
    return "ok"


async def available(name: str) -> bool:
    return name in MODELS


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[PersonaService]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    tools = ToolRegistry([Tool("calculator", "adds", {"type": "object"}, handler)])
    yield PersonaService(
        PersonaStore(create_sessionmaker(engine)),
        tools,
        max_system_prompt_chars=MAX_PROMPT,
        model_available=available,
        max_personas=3,
    )
    await engine.dispose()


@pytest.mark.parametrize("name", ["pirate", "Pirate", " code-wolf_2 ", "x" * 40])
def test_good_names_are_lower_cased(name: str) -> None:
    assert checked_name(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["", "jack sparrow", "-dash", "émile", "x" * 41, "none", "a/b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequestError):
        checked_name(name)


def test_the_default_cap_fits_discords_autocomplete() -> None:
    assert MAX_PERSONAS == 25


async def test_a_checked_persona_is_stored(service: PersonaService) -> None:
    persona = await service.create(
        SCOPE,
        "Pirate",
        system_prompt="Arr.",
        model=" qwen3 ",
        preset="CREATIVE",
        options={"temperature": 0.4, "seed": None},
        tools=["calculator", "calculator"],
        description="  Talks like a pirate  ",
        created_by=7,
    )
    assert (persona.name, persona.model, persona.preset) == ("pirate", "qwen3", "creative")
    assert persona.options == {"temperature": 0.4} and persona.tools == ("calculator",)
    assert persona.description == "Talks like a pirate" and persona.created_by == 7
    assert await service.get(SCOPE, "PIRATE") == persona
    assert await service.get(SCOPE, "not a name!") is None


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"system_prompt": "x" * (MAX_PROMPT + 1)}, "too long"),
        ({"system_prompt": "  "}, "needs a system prompt"),
        ({"model": "gpt-9"}, "no model `gpt-9`"),
        ({"preset": "wild"}, "no preset named 'wild'"),
        ({"options": {"temperature": 3.0}}, "temperature must be between 0 and 2"),
        ({"options": {"warmth": 1}}, "Unknown generation options: warmth"),
        ({"options": {"top_k": 1.5}}, "top_k must be a whole number"),
        ({"tools": ["calculator", "teleport"]}, "no tool named teleport"),
    ],
)
async def test_what_a_channel_would_refuse_a_persona_refuses(
    service: PersonaService, fields: dict[str, Any], said: str
) -> None:
    with pytest.raises(InvalidRequestError, match=said):
        await service.create(SCOPE, "pirate", **{"system_prompt": "Arr.", **fields})
    assert await service.list(SCOPE) == []


async def test_a_name_is_used_once_and_the_cap_holds(service: PersonaService) -> None:
    await service.create(SCOPE, "pirate", system_prompt="Arr.")
    with pytest.raises(InvalidRequestError, match="already has a persona named `pirate`"):
        await service.create(SCOPE, "PIRATE", system_prompt="Again.")
    await service.create(SCOPE, "poet", system_prompt="Verse.")
    await service.create(SCOPE, "ninja", system_prompt="Quiet.")
    with pytest.raises(InvalidRequestError, match="at most 3 personas"):
        await service.create(SCOPE, "monk", system_prompt="Calm.")
    assert [p.name for p in await service.list(SCOPE)] == ["ninja", "pirate", "poet"]


async def test_an_edit_changes_only_the_fields_given(service: PersonaService) -> None:
    await service.create(SCOPE, "pirate", system_prompt="Arr.", model="qwen3", tools=["calculator"])
    edited = await service.edit(
        SCOPE, "Pirate", system_prompt=UNCHANGED, model=None, options={"seed": 3}
    )
    assert (edited.system_prompt, edited.model, edited.options) == ("Arr.", None, {"seed": 3})
    assert edited.tools == ("calculator",)
    edited = await service.edit(SCOPE, "pirate", tools=[], preset="fast")
    assert (edited.tools, edited.preset, edited.options) == ((), "fast", {"seed": 3})


async def test_an_edit_is_checked_like_a_creation(service: PersonaService) -> None:
    await service.create(SCOPE, "pirate", system_prompt="Arr.")
    with pytest.raises(InvalidRequestError, match="needs a system prompt"):
        await service.edit(SCOPE, "pirate", system_prompt="")
    with pytest.raises(InvalidRequestError, match="no model"):
        await service.edit(SCOPE, "pirate", model="gpt-9")
    with pytest.raises(InvalidRequestError, match="no persona named `ghost`"):
        await service.edit(SCOPE, "ghost", model="qwen3")
    assert (await service.find(SCOPE, "pirate")).model is None


async def test_delete_returns_what_went(service: PersonaService) -> None:
    await service.create(SCOPE, "pirate", system_prompt="Arr.")
    deleted = await service.delete(SCOPE, "PIRATE")
    assert deleted.name == "pirate" and await service.list(SCOPE) == []
    with pytest.raises(InvalidRequestError, match="no persona named `pirate`"):
        await service.delete(SCOPE, "pirate")
