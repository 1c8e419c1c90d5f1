"""Presets and keep-alive through the request manager: a session's preset gives way to its
options, a question's preset to the question's own options; keep-alive reaches Ollama in
the form it reads."""

from __future__ import annotations

import pytest

from bot.core.errors import InvalidRequestError
from bot.core.manager import OllamaRequestManager
from bot.core.queries import validate_keep_alive
from tests.emulators.ollama_server import OllamaEmulator


def sent(emu: OllamaEmulator) -> dict:
    chats = [r for r in emu.requests if r.path == "/api/chat"]
    assert chats[-1].json is not None
    return chats[-1].json


async def test_a_question_preset_sends_its_options(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.ask(prompt="hi", preset="precise")
    options = sent(ollama_emu)["options"]
    assert (options["temperature"], options["top_p"], options["num_predict"]) == (0.3, 0.7, 2048)


async def test_layers_from_the_session_preset_to_the_question(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await manager.update_session_settings("s", preset="creative", options={"top_p": 0.5})
    await manager.ask(prompt="hi", session_id="s")
    options = sent(ollama_emu)["options"]
    # creative's temperature and length, the session's own top_p over creative's 0.95
    assert (options["temperature"], options["top_p"], options["num_predict"]) == (0.9, 0.5, 1024)

    await manager.ask(prompt="hi", session_id="s", preset="fast", temperature=1.5)
    options = sent(ollama_emu)["options"]
    # the question's preset over the session's options, its own option over its preset
    assert (options["temperature"], options["top_p"], options["num_predict"]) == (1.5, 0.5, 512)


async def test_unknown_presets_are_refused(manager: OllamaRequestManager) -> None:
    with pytest.raises(InvalidRequestError, match="creative"):
        await manager.ask(prompt="hi", preset="wild")
    with pytest.raises(InvalidRequestError):
        await manager.update_session_settings("s", preset="wild")


@pytest.mark.parametrize(("stored", "on_the_wire"), [("10m", "10m"), ("-1", -1), ("0", 0)])
async def test_a_session_keep_alive_reaches_ollama_as_it_reads_it(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator, stored: str, on_the_wire: object
) -> None:
    await manager.update_session_settings("s", keep_alive=stored)
    await manager.ask(prompt="hi", session_id="s")
    assert sent(ollama_emu)["keep_alive"] == on_the_wire


async def test_a_bad_keep_alive_is_refused_and_nothing_stored(
    manager: OllamaRequestManager,
) -> None:
    with pytest.raises(InvalidRequestError, match="keep-alive"):
        await manager.update_session_settings("s", keep_alive="five minutes")
    assert (await manager.get_session_settings("s")).keep_alive is None


@pytest.mark.parametrize("kept", ["5m", "1h30m", "1.5h", "0", "-1", "300", "-1m", "8760h"])
def test_keep_alives_ollama_reads(kept: str) -> None:
    assert validate_keep_alive(f" {kept} ") == kept


@pytest.mark.parametrize(
    "refused", ["5 minutes", "m5", "5m5", "", "１２", "8761h", "9999999999h", "-9999999999h"]
)
def test_keep_alives_ollama_would_refuse(refused: str) -> None:
    with pytest.raises(InvalidRequestError):
        validate_keep_alive(refused)
