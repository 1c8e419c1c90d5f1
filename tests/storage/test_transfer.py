"""bot.storage.transfer: an installation with data in every table copied to another database
(SQLite to SQLite always; to and from PostgreSQL when a server is at hand) and read back
through the stores; the refusals that keep a copy safe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.knowledge.records import Chunk, NewChunk
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.bench import BenchStore
from bot.storage.engine import head_revision
from bot.storage.live_replies import LiveReplyRecord
from bot.storage.memory import TurnVector
from bot.storage.models import ChatSession, TokenUsage
from bot.storage.personas import PersonaStore
from bot.storage.quotas import QuotaStore, RoleQuota
from bot.storage.transfer import BATCH_ROWS, TransferRefused, tables, transfer
from tests.storage.stores import Stores, stores_of
from tests.support.databases import TestDatabases, count_rows

SNOWFLAKE = 1_312_345_678_901_234_567
PICTURE = b"\x89PNG\r\n\x1a\n not really a picture"
VECTOR = b"\x00\x00\x80?" * 4  # float32 ones
CHANNEL = "channel:1"
HOUR = datetime(2026, 12, 1, 4, tzinfo=UTC)


async def fill(url: str, *, extra_messages: int = 0) -> None:
    """An installation with rows in every table."""
    async with stores_of(url) as s:
        question = {"role": "user", "content": "What is on it?", "images": [PICTURE]}
        await s.sessions.append_turn(CHANNEL, [question, {"role": "assistant", "content": "A"}])
        call = {"function": {"name": "calculator", "arguments": {"expression": "1+1"}}}
        await s.sessions.append_turn(
            CHANNEL,
            [
                {"role": "user", "content": "And 1+1?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "2", "tool_name": "calculator"},
                {"role": "assistant", "content": "2."},
            ],
            model="qwen3",
        )
        if extra_messages:
            many = [{"role": "user", "content": f"m{n}"} for n in range(extra_messages)]
            await s.sessions.append_turn("channel:2", many)
        await s.sessions.update_settings(
            CHANNEL, model="qwen3", preset="creative", options={"temperature": 0.2},
            tools=["calculator"], knowledge_passages=3,
        )  # fmt: skip
        await s.sessions.update_settings(f"guild:{SNOWFLAKE}", member_notes=True)
        spoken = await s.memory.unembedded("nomic", 10, max_chars=100)
        await s.memory.save_vectors(
            [TurnVector(t.id, t.created_at, "nomic", VECTOR) for t in spoken]
        )
        (first, *_) = sorted(spoken, key=lambda t: t.id)
        state = await s.memory.fold_state(CHANNEL, keep_newest=0, limit=10, max_chars=100)
        assert state is not None
        await s.memory.save_summary(CHANNEL, "They asked about a picture.", upto=first,
                                    previous_upto=None)  # fmt: skip
        await s.memory.add_note(f"guild:{SNOWFLAKE}", SNOWFLAKE, "prefers metric", limit=5)
        chunks = [
            NewChunk(Chunk(f"passage {i}", 1, "Intro", f"hash-{i}"), "nomic", VECTOR)
            for i in range(3)
        ]
        await s.knowledge.put_document(
            f"guild:{SNOWFLAKE}", "handbook.pdf", content_hash="doc", characters=27, pages=1,
            channel_ids=[SNOWFLAKE], added_by=SNOWFLAKE, new_chunks=chunks,
        )  # fmt: skip
        await s.live.apply([LiveReplyRecord(SNOWFLAKE, (SNOWFLAKE + 1,), "token")], [])
        await s.state.set("command_tree_hash", "abc123")
        await _fill_community_tables(s)


async def _fill_community_tables(s: Stores) -> None:
    """A channel's persona written as a row; a persona, quotas, token use and a benchmark run
    through their stores."""
    scope = f"guild:{SNOWFLAKE}"
    async with create_sessionmaker(s.engine)() as db, db.begin():
        db.add(ChatSession(id=CHANNEL + "0", persona="pirate", threads=True))
    quotas = QuotaStore(s.sessions)
    await quotas.set_limits(scope, per_hour=1000, per_day=None)
    await quotas.set_role(scope, 7, RoleQuota(day=5))
    await quotas.add_usage(scope, SNOWFLAKE, HOUR, 321, questions=2)
    personas = PersonaStore(create_sessionmaker(s.engine))
    await personas.create(scope, "pirate", system_prompt="Arr.", tools=["calculator"])
    results = {"figures": {"tokens_per_second": {"count": 5, "mean": 41.5, "median": 40.0}}}
    await BenchStore(create_sessionmaker(s.engine)).add(
        scope, "qwen3", results, requested_by=SNOWFLAKE
    )


async def check_copy(url: str) -> None:
    """Everything fill() stored, read back through the stores; new rows get new ids."""
    async with stores_of(url) as s:
        messages = await s.sessions.messages(CHANNEL)
        assert [m["content"] for m in messages] == ["What is on it?", "A", "And 1+1?", "", "2",
                                                    "2."]  # fmt: skip
        assert messages[0]["images"] == [PICTURE]
        assert messages[3]["tool_calls"][0]["function"]["name"] == "calculator"
        assert messages[4]["tool_name"] == "calculator"
        settings = (await s.sessions.settings_of([CHANNEL]))[CHANNEL]
        assert (settings.model, settings.preset, settings.options) == (
            "qwen3", "creative", {"temperature": 0.2},
        )  # fmt: skip
        assert (settings.tools, settings.knowledge_passages) == (("calculator",), 3)
        assert settings.summary == "They asked about a picture."
        assert await s.memory.notes_enabled(f"guild:{SNOWFLAKE}")
        assert len(await s.memory.vectors_of(CHANNEL, "nomic")) == 4  # the spoken ones
        (note,) = await s.memory.notes(f"guild:{SNOWFLAKE}", SNOWFLAKE)
        assert note.text == "prefers metric"
        (document,) = await s.knowledge.documents(f"guild:{SNOWFLAKE}", "nomic")
        assert (document.name, document.chunks, document.channel_ids, document.added_by) == (
            "handbook.pdf", 3, (SNOWFLAKE,), SNOWFLAKE,
        )  # fmt: skip
        found = await s.knowledge.vectors(f"guild:{SNOWFLAKE}", "nomic")
        assert bytes(found.embeddings) == VECTOR * 3
        passages = await s.knowledge.passages(found.chunk_ids)
        assert sorted(p.text for p in passages.values()) == [f"passage {i}" for i in range(3)]
        async with create_sessionmaker(s.engine)() as db:
            usage = await db.get(TokenUsage, (f"guild:{SNOWFLAKE}", SNOWFLAKE, HOUR))
            persona = await db.get(ChatSession, CHANNEL + "0")
        assert usage is not None and (usage.tokens, usage.hour) == (321, HOUR)
        benches = BenchStore(create_sessionmaker(s.engine))
        (run,) = await benches.of_model(f"guild:{SNOWFLAKE}", "qwen3", limit=5)
        assert (run.figure("tokens_per_second"), run.requested_by) == (41.5, SNOWFLAKE)
        assert persona is not None and (persona.persona, persona.threads) == ("pirate", True)
        (pirate,) = await PersonaStore(create_sessionmaker(s.engine)).list(f"guild:{SNOWFLAKE}")
        assert (pirate.system_prompt, pirate.tools) == ("Arr.", ("calculator",))
        (reply,) = await s.live.all()
        assert (reply.id, reply.channel_id, reply.interaction_token) == (
            SNOWFLAKE + 1, SNOWFLAKE, "token",
        )  # fmt: skip
        assert await s.state.get("command_tree_hash") == "abc123"

        # The target goes on numbering after the copied ids (PostgreSQL: its sequences).
        await s.sessions.append_turn(CHANNEL, [{"role": "user", "content": "later"}])
        assert (await s.sessions.messages(CHANNEL))[-1]["content"] == "later"
        assert await s.memory.add_note(f"guild:{SNOWFLAKE}", SNOWFLAKE, "and tea", limit=5)
        chunk = NewChunk(Chunk("new", None, None, "hash-new"), "nomic", VECTOR)
        await s.knowledge.put_document(
            "guild:1", "new.txt", content_hash="n", characters=3, pages=None,
            channel_ids=None, added_by=None, new_chunks=[chunk],
        )  # fmt: skip


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / name}"


@pytest.fixture
async def databases_for(
    tmp_path: Path, test_databases: TestDatabases, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, str]]:
    """(source URL, target URL) of the kinds the test's parameter names."""
    source_kind, target_kind = request.param
    made: list[str] = []

    def url(kind: str, name: str) -> str:
        if kind == "sqlite":
            return sqlite_url(tmp_path, name)
        new, database = test_databases.new_postgres(migrated=name == "target.db")
        made.append(database)
        return new

    yield url(source_kind, "source.db"), url(target_kind, "target.db")
    for database in made:
        test_databases.drop(database)


BACKEND_PAIRS = [
    pytest.param(("sqlite", "sqlite"), id="sqlite-to-sqlite"),
    pytest.param(("sqlite", "postgresql"), id="sqlite-to-postgresql",
                 marks=pytest.mark.postgresql_only),
    pytest.param(("postgresql", "sqlite"), id="postgresql-to-sqlite",
                 marks=pytest.mark.postgresql_only),
]  # fmt: skip


@pytest.mark.parametrize("databases_for", BACKEND_PAIRS, indirect=True)
async def test_every_table_is_copied_and_read_back(databases_for: tuple[str, str]) -> None:
    source, target = databases_for
    await fill(source)
    result = await transfer(source, target)
    assert result.verified
    assert [t.table for t in result.tables] == [t.name for t in tables()]
    empty = [t.table for t in result.tables if t.source == 0]
    assert empty == [], "fill() must put rows in every table"
    assert result.rows == sum(t.source for t in result.tables)
    await check_copy(target)
    assert {t.name: count_rows(source, t.name) for t in tables()} == {
        t.table: t.source for t in result.tables
    }  # the source is left as it was


async def test_rows_go_over_in_bounded_batches(tmp_path: Path) -> None:
    source, target = sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "b.db")
    await fill(source, extra_messages=2 * BATCH_ROWS)
    seen: dict[str, list[int]] = {}
    result = await transfer(source, target, progress=lambda t, n: seen.setdefault(t, []).append(n))
    total = {t.table: t.target for t in result.tables}["messages"]
    assert seen["messages"] == [BATCH_ROWS, 2 * BATCH_ROWS, total]
    assert seen["bot_state"] == [1]


async def test_a_target_holding_data_is_refused_and_left_alone(tmp_path: Path) -> None:
    source, target = sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "b.db")
    await fill(source)
    async with stores_of(target) as s:
        await s.sessions.append_turn("mine", [{"role": "user", "content": "keep me"}])
    with pytest.raises(TransferRefused) as refused:
        await transfer(source, target)
    assert "already holds data (1 in sessions, 1 in messages)" in refused.value.user_message
    assert count_rows(target, "messages") == 1 and count_rows(target, "kb_chunks") == 0


async def test_the_same_database_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sqlite_url(tmp_path, "a.db")
    await fill(source)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TransferRefused, match="both the source and the target"):
        await transfer(source, "sqlite+aiosqlite:///./a.db")
    with pytest.raises(TransferRefused, match="both the source and the target"):
        await transfer(
            "postgresql+asyncpg://a:one@db.example/ollacord",
            "postgresql+asyncpg://b:two@db.example/ollacord",
        )


async def test_sources_that_are_not_ollacord_databases_at_head_are_refused(
    tmp_path: Path,
) -> None:
    target = sqlite_url(tmp_path, "b.db")
    with pytest.raises(TransferRefused, match="There is no database at"):
        await transfer(sqlite_url(tmp_path, "missing.db"), target)
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(TransferRefused, match="never migrated"):
        await transfer(sqlite_url(tmp_path, "other.db"), target)
    with pytest.raises(TransferRefused, match="--from is not a database URL"):
        await transfer("not a url", target)
    behind = sqlite_url(tmp_path, "behind.db")
    engine = create_engine(behind)
    await upgrade_database(engine, "0005")
    await engine.dispose()
    expected = f"at revision 0005, not {head_revision()}: run `ollacord migr"
    with pytest.raises(TransferRefused, match=expected):
        await transfer(behind, target)
