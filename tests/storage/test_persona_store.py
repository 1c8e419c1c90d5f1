"""PersonaStore against a real database (SQLite; PostgreSQL with --db=postgresql): personas
per server, names unique within a server, the cap counted when writing, partial updates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.personas import PersonaNameTaken, PersonaStore

SCOPE, OTHER = "guild:1", "guild:2"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PersonaStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield PersonaStore(create_sessionmaker(engine))
    await engine.dispose()


async def test_a_persona_is_stored_with_everything_it_holds(store: PersonaStore) -> None:
    created = await store.create(
        SCOPE,
        "pirate",
        system_prompt="Arr.",
        description="Talks like a pirate",
        model="qwen3",
        preset="creative",
        options={"temperature": 0.4},
        tools=["calculator"],
        created_by=42,
    )
    assert created is not None and created.created_at is not None
    found = await store.get(SCOPE, "pirate")
    assert found == created
    assert (found.model, found.preset, found.options, found.tools) == (
        "qwen3", "creative", {"temperature": 0.4}, ("calculator",),
    )  # fmt: skip
    assert (found.description, found.created_by) == ("Talks like a pirate", 42)


async def test_personas_are_per_server_and_listed_by_name(store: PersonaStore) -> None:
    for name in ("zeta", "alpha"):
        await store.create(SCOPE, name, system_prompt=name)
    await store.create(OTHER, "alpha", system_prompt="elsewhere")
    assert [p.name for p in await store.list(SCOPE)] == ["alpha", "zeta"]
    assert [p.system_prompt for p in await store.list(OTHER)] == ["elsewhere"]
    assert (await store.count(SCOPE), await store.count("guild:3")) == (2, 0)
    assert await store.get(OTHER, "zeta") is None


async def test_a_name_is_taken_once_per_server(store: PersonaStore) -> None:
    await store.create(SCOPE, "pirate", system_prompt="Arr.")
    with pytest.raises(PersonaNameTaken):
        await store.create(SCOPE, "pirate", system_prompt="Again.")
    assert (await store.get(SCOPE, "pirate")).system_prompt == "Arr."


async def test_past_the_limit_nothing_is_added(store: PersonaStore) -> None:
    for number in range(3):
        assert await store.create(SCOPE, f"p{number}", system_prompt="x", limit=3) is not None
    assert await store.create(SCOPE, "p3", system_prompt="x", limit=3) is None
    assert await store.count(SCOPE) == 3
    assert await store.create(OTHER, "p3", system_prompt="x", limit=3) is not None


async def test_an_update_changes_only_what_it_names(store: PersonaStore) -> None:
    await store.create(SCOPE, "pirate", system_prompt="Arr.", model="qwen3", tools=["calculator"])
    updated = await store.update(SCOPE, "pirate", options={"seed": 1}, model=None)
    assert updated is not None
    assert (updated.system_prompt, updated.model, updated.options) == ("Arr.", None, {"seed": 1})
    assert updated.tools == ("calculator",)
    cleared = await store.update(SCOPE, "pirate", tools=[], options={})
    assert cleared is not None and (cleared.tools, cleared.options) == ((), {})
    assert await store.update(SCOPE, "ghost", model="x") is None
    with pytest.raises(ValueError, match="created_by"):
        await store.update(SCOPE, "pirate", created_by=7)


async def test_delete_removes_only_that_persona(store: PersonaStore) -> None:
    await store.create(SCOPE, "pirate", system_prompt="Arr.")
    await store.create(OTHER, "pirate", system_prompt="Arr.")
    assert await store.delete(SCOPE, "pirate")
    assert not await store.delete(SCOPE, "pirate")
    assert await store.get(SCOPE, "pirate") is None
    assert await store.get(OTHER, "pirate") is not None


async def test_a_channel_keeps_the_persona_it_answers_as(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    try:
        sessions = SessionStore(create_sessionmaker(engine))
        settings, created = await sessions.update_settings("channel:5", persona="pirate")
        assert created and settings.persona == "pirate"
        assert (await sessions.settings_of(["channel:5"]))["channel:5"].persona == "pirate"
        settings, _ = await sessions.update_settings("channel:5", model="qwen3")
        assert settings.persona == "pirate"  # untouched by other changes
        settings, _ = await sessions.update_settings("channel:5", persona=None)
        assert settings.persona is None
    finally:
        await engine.dispose()
