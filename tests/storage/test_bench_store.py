"""BenchStore against a real database (SQLite; PostgreSQL with --db=postgresql): runs kept
per server, read back newest first, per model and as each model's latest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from bot.core.errors import StorageError
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.bench import BenchStore

SCOPE = "guild:1"
OTHER_SCOPE = "guild:2"


def results(tokens_per_second: float) -> dict[str, Any]:
    stats = {"count": 5, "mean": tokens_per_second, "median": tokens_per_second - 1}
    return {"kind": "bench", "runs": 1, "figures": {"tokens_per_second": stats}}


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[BenchStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield BenchStore(create_sessionmaker(engine))
    await engine.dispose()


async def test_a_run_is_kept_with_its_figures(store: BenchStore) -> None:
    kept = await store.add(SCOPE, "qwen3:latest", results(41.5), requested_by=7)
    [read] = await store.of_model(SCOPE, "qwen3:latest", limit=5)
    assert read == kept
    assert (read.scope, read.model, read.requested_by) == (SCOPE, "qwen3:latest", 7)
    assert read.figure("tokens_per_second") == 41.5
    assert read.figure("tokens_per_second", "median") == 40.5
    assert read.figure("load_time") is None
    assert read.created_at is not None


async def test_runs_of_a_model_come_newest_first_within_the_limit(store: BenchStore) -> None:
    ids = [
        (await store.add(SCOPE, "qwen3:latest", results(n), requested_by=None)).id
        for n in (10.0, 20.0, 30.0)
    ]
    await store.add(SCOPE, "llama3.2:latest", results(99.0), requested_by=None)
    await store.add(OTHER_SCOPE, "qwen3:latest", results(99.0), requested_by=None)
    runs = await store.of_model(SCOPE, "qwen3:latest", limit=2)
    assert [r.id for r in runs] == [ids[2], ids[1]]
    earlier = await store.of_model(SCOPE, "qwen3:latest", limit=5, before=ids[2])
    assert [r.figure("tokens_per_second") for r in earlier] == [20.0, 10.0]


async def test_latest_per_model_gives_each_models_newest_run(store: BenchStore) -> None:
    await store.add(SCOPE, "qwen3:latest", results(10.0), requested_by=None)
    await store.add(SCOPE, "llama3.2:latest", results(50.0), requested_by=None)
    newest_qwen = await store.add(SCOPE, "qwen3:latest", results(12.0), requested_by=None)
    await store.add(OTHER_SCOPE, "mistral:latest", results(5.0), requested_by=None)
    latest = await store.latest_per_model(SCOPE, limit=10)
    assert [(r.model, r.figure("tokens_per_second")) for r in latest] == [
        ("qwen3:latest", 12.0),
        ("llama3.2:latest", 50.0),
    ]
    assert latest[0].id == newest_qwen.id
    assert [r.model for r in await store.latest_per_model(SCOPE, limit=1)] == ["qwen3:latest"]
    assert await store.latest_per_model("guild:3", limit=10) == []


async def test_a_broken_database_is_a_storage_error(store: BenchStore) -> None:
    async with store._sessionmaker() as db, db.begin():
        await db.execute(text("DROP TABLE bench_runs"))
    with pytest.raises(StorageError):
        await store.add(SCOPE, "qwen3:latest", results(1.0), requested_by=None)
    with pytest.raises(StorageError):
        await store.latest_per_model(SCOPE, limit=1)
    with pytest.raises(StorageError):
        await store.of_model(SCOPE, "qwen3:latest", limit=1)
