"""MemoryStore against a real database (SQLite; PostgreSQL with --db=postgresql): turn
vectors (which messages lack one, writes that race a clear, the cascade), the running
summary's state and its guarded write, members' notes and their privacy rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.history import ChatMessage
from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.memory import MemoryStore, StoredText, TurnVector
from bot.storage.models import MessageEmbedding

NOMIC, MXBAI = "nomic-embed-text", "mxbai-embed-large"
CHARS = 1000


@dataclass
class Stores:
    engine: AsyncEngine
    sessions: SessionStore
    memory: MemoryStore

    async def vector_count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(MessageEmbedding)))


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    sessions = SessionStore(create_sessionmaker(engine))
    yield Stores(engine, sessions, MemoryStore(sessions))
    await engine.dispose()


def turn(question: str, answer: str) -> list[ChatMessage]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def vector(text: StoredText, model: str = NOMIC, blob: bytes = b"\0\0\x80?") -> TurnVector:
    return TurnVector(text.id, text.created_at, model, blob)


async def embed_all(stores: Stores, model: str = NOMIC) -> None:
    pending = await stores.memory.unembedded(model, 100, max_chars=CHARS)
    await stores.memory.save_vectors([vector(t, model) for t in pending])


# --- turn vectors -----------------------------------------------------------------------


async def test_unembedded_are_spoken_messages_with_text_newest_first(stores: Stores) -> None:
    call = {"function": {"name": "calculator", "arguments": {"expression": "1+1"}}}
    await stores.sessions.append_turn(
        "a",
        [
            {"role": "user", "content": "what is 1+1?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "2", "tool_name": "calculator"},
            {"role": "assistant", "content": "  \n "},
            {"role": "assistant", "content": "It is 2."},
        ],
    )
    await stores.sessions.append_turn("b", turn("x" * 3000, "short"))
    pending = await stores.memory.unembedded(NOMIC, 10, max_chars=CHARS)
    assert [(t.session_id, t.role, t.content) for t in pending] == [
        ("b", "assistant", "short"),
        ("b", "user", "x" * CHARS),  # only the start is read
        ("a", "assistant", "It is 2."),
        ("a", "user", "what is 1+1?"),
    ]
    only_a = await stores.memory.unembedded(NOMIC, 10, session_id="a", max_chars=CHARS)
    assert [t.content for t in only_a] == ["It is 2.", "what is 1+1?"]
    first_page = await stores.memory.unembedded(NOMIC, 3, max_chars=CHARS)
    assert len(first_page) == 3
    rest = await stores.memory.unembedded(NOMIC, 3, before=first_page[-1].id, max_chars=CHARS)
    assert [t.content for t in rest] == ["what is 1+1?"]


async def test_vectors_of_another_model_count_as_missing(stores: Stores) -> None:
    await stores.sessions.append_turn("s", turn("q", "a"))
    await embed_all(stores, NOMIC)
    assert await stores.memory.unembedded(NOMIC, 10, max_chars=CHARS) == []
    again = await stores.memory.unembedded(MXBAI, 10, max_chars=CHARS)
    assert [t.content for t in again] == ["a", "q"]

    await stores.memory.save_vectors([vector(t, MXBAI, b"1234") for t in again])
    assert await stores.vector_count() == 2  # replaced, not added
    assert await stores.memory.vectors_of("s", NOMIC) == []
    assert [blob for _, blob in await stores.memory.vectors_of("s", MXBAI)] == [b"1234"] * 2


async def test_vectors_are_per_session(stores: Stores) -> None:
    await stores.sessions.append_turn("mine", turn("q1", "a1"))
    await stores.sessions.append_turn("theirs", turn("q2", "a2"))
    await embed_all(stores)
    mine = await stores.memory.vectors_of("mine", NOMIC)
    assert len(mine) == 2
    ids = [message_id for message_id, _ in await stores.memory.vectors_of("theirs", NOMIC)]
    # texts() of one session never returns another's messages, even by id.
    assert await stores.memory.texts("mine", ids, CHARS) == []
    assert [t.content for t in await stores.memory.texts("theirs", ids, CHARS)] == ["q2", "a2"]


async def test_a_vector_for_a_cleared_message_is_not_saved(stores: Stores, db_backend: str) -> None:
    await stores.sessions.append_turn("s", turn("old question", "old answer"))
    pending = await stores.memory.unembedded(NOMIC, 10, max_chars=CHARS)
    # Cleared while its vectors were being computed; new messages may reuse the ids.
    await stores.sessions.clear_messages("s")
    await stores.sessions.append_turn("s", turn("new question", "new answer"))
    reused = await stores.memory.unembedded(NOMIC, 10, max_chars=CHARS)
    if db_backend == "sqlite":  # PostgreSQL's sequences never give an id twice
        assert {t.id for t in reused} == {t.id for t in pending}  # SQLite did reuse them

    assert await stores.memory.save_vectors([vector(t) for t in pending]) == 0
    assert await stores.vector_count() == 0
    assert await stores.memory.save_vectors([vector(t) for t in reused]) == 2


@pytest.mark.parametrize("how", ["clear", "delete", "reset", "clear_prefix"])
async def test_vectors_go_with_their_messages(stores: Stores, how: str) -> None:
    await stores.sessions.append_turn("channel:1", turn("q", "a"))
    await stores.sessions.append_turn("other", turn("q", "a"))
    await embed_all(stores)
    assert await stores.vector_count() == 4
    if how == "clear":
        await stores.sessions.clear_messages("channel:1")
    elif how == "delete":
        await stores.sessions.delete("channel:1")
    elif how == "reset":
        await stores.sessions.reset("channel:1")
    else:
        await stores.sessions.clear_messages_prefix("channel:")
    assert await stores.memory.vectors_of("channel:1", NOMIC) == []
    assert await stores.vector_count() == 2


# --- running summary --------------------------------------------------------------------


async def fill(stores: Stores, session_id: str, turns: int, first: int = 0) -> None:
    for i in range(first, first + turns):
        await stores.sessions.append_turn(session_id, turn(f"q{i}", f"a{i}"), model="llama3.2")


async def test_fold_state_is_what_fell_out_of_the_window(stores: Stores) -> None:
    assert await stores.memory.fold_state("s", keep_newest=4, limit=10, max_chars=CHARS) is None
    await fill(stores, "s", 2)
    state = await stores.memory.fold_state("s", keep_newest=4, limit=10, max_chars=CHARS)
    assert state is not None and state.pending == 0 and state.messages == []
    await fill(stores, "s", 3, first=2)  # ten messages, the newest four in the window
    state = await stores.memory.fold_state("s", keep_newest=4, limit=4, max_chars=CHARS)
    assert state is not None
    assert (state.summary, state.upto, state.pending, state.model) == (None, None, 6, "llama3.2")
    assert [m.content for m in state.messages] == ["q0", "a0", "q1", "a1"]
    assert [m.id for m in state.messages] == sorted(m.id for m in state.messages)
    # A window never opens on an answer: with three places, a3 is not sent either.
    odd = await stores.memory.fold_state("s", keep_newest=3, limit=10, max_chars=CHARS)
    assert odd is not None and odd.pending == 8 and odd.messages[-1].content == "a3"

    assert await stores.memory.save_summary(
        "s", "q0 and q1 were asked", upto=state.messages[-1], previous_upto=None
    )
    state = await stores.memory.fold_state("s", keep_newest=4, limit=10, max_chars=CHARS)
    assert state is not None and state.summary == "q0 and q1 were asked"
    assert [m.content for m in state.messages] == ["q2", "a2"] and state.pending == 2
    assert state.upto is not None
    # The planner reads it at once (the settings cache was told).
    settings, _ = await stores.sessions.load_context("s", 4)
    assert settings.summary == "q0 and q1 were asked"


async def test_a_summary_is_not_saved_over_a_change(stores: Stores) -> None:
    await fill(stores, "s", 4)
    state = await stores.memory.fold_state("s", keep_newest=2, limit=2, max_chars=CHARS)
    assert state is not None
    assert await stores.memory.save_summary("s", "one", upto=state.messages[-1], previous_upto=None)
    # A second fold that read the same state (it did not see the first one's write).
    assert not await stores.memory.save_summary(
        "s", "two", upto=state.messages[-1], previous_upto=None
    )
    # Cleared meanwhile, the ids reused by a new conversation: nothing lands on it.
    state = await stores.memory.fold_state("s", keep_newest=2, limit=2, max_chars=CHARS)
    assert state is not None
    await stores.sessions.clear_messages("s")
    await fill(stores, "s", 4)
    assert not await stores.memory.save_summary(
        "s", "three", upto=state.messages[-1], previous_upto=state.upto
    )
    record = await stores.sessions.get("s")
    assert record is not None and record.settings.summary is None


async def test_clearing_messages_clears_the_summary(stores: Stores) -> None:
    for session_id in ("channel:1", "channel:2", "guild:9"):
        await fill(stores, session_id, 3)
        state = await stores.memory.fold_state(session_id, keep_newest=2, limit=9, max_chars=CHARS)
        assert state is not None
        await stores.memory.save_summary(
            session_id, f"summary of {session_id}", upto=state.messages[-1], previous_upto=None
        )
    await stores.sessions.update_settings("channel:1", model="qwen3")
    for session_id in ("channel:1", "channel:2", "guild:9"):
        settings, _ = await stores.sessions.load_context(session_id, 2)  # cached now
        assert settings.summary == f"summary of {session_id}"

    await stores.sessions.clear_messages("channel:1")
    settings, history = await stores.sessions.load_context("channel:1", 2)
    assert (settings.summary, history, settings.model) == (None, [], "qwen3")
    state = await stores.memory.fold_state("channel:1", keep_newest=2, limit=9, max_chars=CHARS)
    assert state is not None and state.upto is None

    await stores.sessions.clear_messages_prefix("channel:")
    settings, _ = await stores.sessions.load_context("channel:2", 2)
    assert settings.summary is None
    settings, _ = await stores.sessions.load_context("guild:9", 2)
    assert settings.summary == "summary of guild:9"


# --- members' notes ---------------------------------------------------------------------

GUILD, OTHER_GUILD = "guild:1", "guild:2"
ADA, BOB = 101, 202


async def test_notes_are_kept_per_member_and_scope(stores: Stores) -> None:
    memory = stores.memory
    first = await memory.add_note(GUILD, ADA, "Prefers Python", limit=5)
    await memory.add_note(GUILD, ADA, "Lives in Lyon", limit=5)
    await memory.add_note(GUILD, BOB, "Likes Rust", limit=5)
    await memory.add_note(OTHER_GUILD, ADA, "Plays chess", limit=5)
    assert first is not None
    assert [n.text for n in await memory.notes(GUILD, ADA)] == ["Prefers Python", "Lives in Lyon"]
    assert [n.text for n in await memory.notes(GUILD, BOB)] == ["Likes Rust"]
    assert [n.text for n in await memory.notes(OTHER_GUILD, ADA)] == ["Plays chess"]
    assert (await memory.notes(GUILD, ADA))[0].created_at.tzinfo is not None
    # The same note again is kept once.
    again = await memory.add_note(GUILD, ADA, "Prefers Python", limit=5)
    assert again == first and len(await memory.notes(GUILD, ADA)) == 2


async def test_one_member_never_deletes_anothers_notes(stores: Stores) -> None:
    memory = stores.memory
    adas = await memory.add_note(GUILD, ADA, "Prefers Python", limit=5)
    await memory.add_note(GUILD, BOB, "Likes Rust", limit=5)
    assert adas is not None
    assert not await memory.forget_note(GUILD, BOB, adas.id)
    assert not await memory.forget_note(OTHER_GUILD, ADA, adas.id)
    assert await memory.forget_notes(GUILD, 999) == 0
    assert [n.text for n in await memory.notes(GUILD, ADA)] == ["Prefers Python"]
    assert await memory.forget_note(GUILD, ADA, adas.id)
    assert await memory.notes(GUILD, ADA) == []
    assert [n.text for n in await memory.notes(GUILD, BOB)] == ["Likes Rust"]


async def test_forget_all_and_purge(stores: Stores) -> None:
    memory = stores.memory
    for user in (ADA, BOB):
        for text in ("one", "two"):
            await memory.add_note(GUILD, user, text, limit=5)
    await memory.add_note(OTHER_GUILD, ADA, "kept", limit=5)
    assert await memory.forget_notes(GUILD, ADA) == 2
    assert [n.text for n in await memory.notes(GUILD, BOB)] == ["one", "two"]
    assert await memory.purge_notes(GUILD) == 2
    assert await memory.notes(GUILD, BOB) == []
    assert [n.text for n in await memory.notes(OTHER_GUILD, ADA)] == ["kept"]


async def test_a_member_has_at_most_limit_notes(stores: Stores) -> None:
    for i in range(3):
        assert await stores.memory.add_note(GUILD, ADA, f"fact {i}", limit=3) is not None
    assert await stores.memory.add_note(GUILD, ADA, "one too many", limit=3) is None
    assert await stores.memory.add_note(GUILD, BOB, "Bob's first", limit=3) is not None
    assert len(await stores.memory.notes(GUILD, ADA)) == 3


async def test_notes_are_enabled_by_the_servers_settings(stores: Stores) -> None:
    assert not await stores.memory.notes_enabled(GUILD)
    await stores.sessions.update_settings(GUILD, member_notes=True)
    assert await stores.memory.notes_enabled(GUILD)
    assert not await stores.memory.notes_enabled(OTHER_GUILD)
    await stores.sessions.update_settings(GUILD, member_notes=False)
    assert not await stores.memory.notes_enabled(GUILD)
