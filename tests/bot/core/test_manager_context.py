"""Context that is neither history nor question: knowledge sources go with the question the
model sees (never into the stored turn), the asker's notes into the system prompt."""

from __future__ import annotations

from bot.core.knowledge.prompt import NO_SOURCES, WITH_SOURCES
from bot.core.manager import OllamaRequestManager
from bot.core.planning import NOTES_HEADING
from tests.emulators.ollama_server import OllamaEmulator


def last_chat(emu: OllamaEmulator) -> list[dict]:
    return [r for r in emu.requests if r.path == "/api/chat"][-1].messages


async def test_sources_are_numbered_for_the_model_and_not_stored(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.ask(
        prompt="When do we meet?", session_id="s", sources=["Meetings are on Mondays.", "B"]
    )
    asked = last_chat(ollama_emu)[-1]["content"]
    assert asked.startswith(WITH_SOURCES)
    assert "[1] Meetings are on Mondays.\n\n[2] B" in asked
    assert asked.endswith("Question: When do we meet?")
    stored = await manager.store.messages("s")
    assert stored[0] == {"role": "user", "content": "When do we meet?"}

    await manager.ask(prompt="And then?", session_id="s")  # a later question: plain history
    assert [m["content"] for m in last_chat(ollama_emu)][:2] == [
        "When do we meet?",
        stored[1]["content"],
    ]


async def test_no_relevant_source_is_said_so(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.ask(prompt="What is our motto?", sources=[])
    assert last_chat(ollama_emu)[-1]["content"].startswith(NO_SOURCES)


async def test_notes_join_the_system_prompt(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.ask(prompt="Which language?", system_prompt="Be brief.", notes=["Prefers Python"])
    system = last_chat(ollama_emu)[0]
    assert system["role"] == "system"
    assert system["content"] == f"Be brief.\n\n{NOTES_HEADING}\n- Prefers Python"
