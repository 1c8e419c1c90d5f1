"""Members' notes through the memory layer, against the Ollama emulator and a real SQLite
store: the ``remember`` tool a model calls (refused where the server has not opted in),
the notes reaching the asker's questions, the privacy rule between members, purge, and the
bounds with the words a member sees."""

from __future__ import annotations

import pytest

from bot import OllamaRequestManager
from bot.core.memory import Memory
from bot.core.memory.notes import (
    MAX_NOTE_CHARS,
    NOTES_OFF,
    MemberNotes,
    NoteRefusedError,
)
from bot.core.planning import NOTES_HEADING
from bot.core.tools.registry import ToolContext, ToolRegistry
from tests.bot.core.memory.conftest import wired
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator

GUILD, OTHER_GUILD = "guild:1", "guild:2"
ADA, BOB = 101, 202


@pytest.fixture
async def manager(make_manager: ManagerFactory) -> OllamaRequestManager:
    m = make_manager()
    await m.start()
    return m


@pytest.fixture
def memory(manager: OllamaRequestManager) -> Memory:
    return wired(manager)


@pytest.fixture
def notes(memory: Memory) -> MemberNotes:
    return memory.notes


async def opt_in(manager: OllamaRequestManager, scope: str = GUILD) -> None:
    await manager.store.update_settings(scope, member_notes=True)


async def remember_through_the_model(
    manager: OllamaRequestManager,
    memory: Memory,
    emu: OllamaEmulator,
    note: str,
    *,
    user_id: int = ADA,
    scope: str | None = GUILD,
) -> str:
    """A question whose model calls remember(note); the tool's result as the model read it.
    The front end offers the tool by name, with the member and scope in the context."""
    context = ToolContext(session_id="channel:7", user_id=user_id, scope=scope)
    emu.script_tools([[("remember", {"note": note})]], final="{tool:remember}")
    result = await manager.ask(
        prompt="Please remember this.",
        session_id="channel:7",
        toolset=manager.tools.select(["remember"], context),
    )
    emu.clear_tool_scripts()
    return result.content


async def test_the_model_remembers_for_the_member_asking(
    manager: OllamaRequestManager,
    memory: Memory,
    notes: MemberNotes,
    ollama_emu: OllamaEmulator,
) -> None:
    await opt_in(manager)
    said = await remember_through_the_model(manager, memory, ollama_emu, " Prefers\nPython ")
    assert said == "Remembered for this member: Prefers Python"
    assert [n.text for n in await notes.list(GUILD, ADA)] == ["Prefers Python"]
    assert await notes.list(GUILD, BOB) == []

    # Later questions of that member carry the note, after the system prompt.
    ollama_emu.set_reply("Python it is.")
    await manager.ask(
        prompt="Which language should I use?",
        session_id="channel:7",
        notes=await memory.notes_for(GUILD, ADA),
    )
    # The last chat request (the memory may have embedded the turns since).
    [*_, asked] = [r for r in ollama_emu.requests if r.path == "/api/chat"]
    system = asked.messages[0]
    assert f"{NOTES_HEADING}\n- Prefers Python" in system["content"]
    assert await memory.notes_for(GUILD, BOB) == []


async def test_remember_is_refused_where_notes_are_off(
    manager: OllamaRequestManager,
    memory: Memory,
    notes: MemberNotes,
    ollama_emu: OllamaEmulator,
) -> None:
    said = await remember_through_the_model(manager, memory, ollama_emu, "Prefers Python")
    assert said == f"Error: {NOTES_OFF}"
    said = await remember_through_the_model(manager, memory, ollama_emu, "x", scope=None)
    assert said == "Error: there is no member to remember this for here"
    await opt_in(manager, OTHER_GUILD)  # another server's choice is not this one's
    await remember_through_the_model(manager, memory, ollama_emu, "Prefers Python")
    assert await notes.list(GUILD, ADA) == []
    # The tool is not among the defaults: a channel offers it only where chosen.
    assert "remember" in manager.tools and "remember" not in manager.tools.default_names()
    assert ToolRegistry(memory.tools()).default_names() == []
    # Notes already stored stay out of questions while the server has them off.
    await notes.add(GUILD, ADA, "Prefers Python")
    assert await memory.notes_for(GUILD, ADA) == []
    await opt_in(manager)
    assert await memory.notes_for(GUILD, ADA) == ["Prefers Python"]


async def test_the_tool_refuses_a_long_note_and_a_full_memory(
    manager: OllamaRequestManager,
    memory: Memory,
    notes: MemberNotes,
    ollama_emu: OllamaEmulator,
) -> None:
    await opt_in(manager)
    said = await remember_through_the_model(manager, memory, ollama_emu, "y" * (MAX_NOTE_CHARS + 1))
    assert said.startswith("Error: That note is 301 characters long")
    notes.max_notes = 2
    await notes.add(GUILD, ADA, "one")
    await notes.add(GUILD, ADA, "two")
    said = await remember_through_the_model(manager, memory, ollama_emu, "three")
    assert "already have 2 notes" in said and "/memory forget" in said
    assert [n.text for n in await notes.list(GUILD, ADA)] == ["one", "two"]


async def test_members_never_see_or_delete_each_others_notes(notes: MemberNotes) -> None:
    adas = await notes.add(GUILD, ADA, "Prefers Python")
    bobs = await notes.add(GUILD, BOB, "Likes Rust")
    assert [n.text for n in await notes.list(GUILD, BOB)] == ["Likes Rust"]
    assert not await notes.forget(GUILD, BOB, adas.id)  # Bob names Ada's note
    assert await notes.forget_all(GUILD, BOB) == 1  # all of Bob's: only Bob's
    assert [n.text for n in await notes.list(GUILD, ADA)] == ["Prefers Python"]
    assert not await notes.forget(GUILD, ADA, bobs.id)  # already gone, and not hers
    assert await notes.forget(GUILD, ADA, adas.id)
    assert await notes.list(GUILD, ADA) == []


async def test_purge_deletes_one_servers_notes(notes: MemberNotes) -> None:
    for user in (ADA, BOB):
        await notes.add(GUILD, user, "here")
    await notes.add(OTHER_GUILD, ADA, "there")
    assert await notes.purge(GUILD) == 2
    assert await notes.list(GUILD, ADA) == [] and await notes.list(GUILD, BOB) == []
    assert [n.text for n in await notes.list(OTHER_GUILD, ADA)] == ["there"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "A note needs some text."),
        ("  \n ", "A note needs some text."),
        ("z" * (MAX_NOTE_CHARS + 5), f"at most {MAX_NOTE_CHARS}"),
    ],
)
async def test_bad_notes_are_refused_politely(notes: MemberNotes, text: str, message: str) -> None:
    with pytest.raises(NoteRefusedError) as refused:
        await notes.add(GUILD, ADA, text)
    assert message in refused.value.user_message
    assert await notes.list(GUILD, ADA) == []


async def test_a_note_at_the_bounds_is_kept(notes: MemberNotes) -> None:
    longest = "w" * MAX_NOTE_CHARS
    assert (await notes.add(GUILD, ADA, longest)).text == longest
    for i in range(notes.max_notes - 1):
        await notes.add(GUILD, ADA, f"fact {i}")
    assert len(await notes.list(GUILD, ADA)) == notes.max_notes
    with pytest.raises(NoteRefusedError, match=f"already have {notes.max_notes} notes"):
        await notes.add(GUILD, ADA, "one more")
    # The same note again is not a new one, so it is no refusal either.
    assert (await notes.add(GUILD, ADA, "fact 0")).text == "fact 0"
