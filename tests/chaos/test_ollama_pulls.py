"""/model pull while Ollama's download is slow or fails: the admin sees the progress, then
the model ready or why not; members' questions are answered meanwhile and stored once, and
after a failed pull the next one installs the model, which then answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.ollama_world import WAIT, assert_keeps_serving, assert_stored
from tests.e2e.conftest import World, private_notes, wait_private_note, world
from tests.e2e.test_ask import ask, finished, pages_without_footer
from tests.emulators.discord_server import InteractionRecord
from tests.emulators.ollama_faults import PULL_PATHS
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

MODEL = "mistral:7b"
PULLABLE = {MODEL: EmulatedModel(MODEL, size=4_100_000_000)}
PULL_FAILED = "max retries exceeded: unexpected EOF"  # Ollama's words for a failed download
HELD = 3600.0  # a stall the test ends itself (end_stalls)
READY = f"✅ `{MODEL}` is ready."


async def pull(w: World) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "model", subcommand="pull", user_id=w.admin.id, **w.where, options={"name": MODEL}
    )


def shown(rec: InteractionRecord) -> str:
    return rec.original.content if rec.original is not None else ""


async def test_a_slow_pull_does_not_hold_up_questions(tmp_path: Path) -> None:
    async with world(tmp_path, ollama_options={"pullable": PULLABLE}) as w:
        w.ollama.stall_mid_stream(3, HELD, paths=PULL_PATHS)
        rec = await pull(w)
        await rec.wait_done(lambda r: f"Pulling `{MODEL}`" in shown(r), timeout=WAIT)

        w.ollama.set_reply("Answered during the pull.")
        question = "Are you there while it downloads?"
        messages = await finished(await ask(w, question), timeout=WAIT)
        assert pages_without_footer(messages) == ["Answered during the pull."]
        assert "ready" not in shown(rec) and MODEL not in w.ollama.models  # still pulling

        w.ollama.end_stalls()
        await rec.wait_done(lambda r: shown(r) == READY, timeout=WAIT)
        await assert_keeps_serving(w, model=MODEL)
        await assert_stored(w, answered=[question, "And the next question?"])


@pytest.mark.parametrize(
    ("inject", "told"),
    [
        (lambda e: e.error_mid_stream(3, PULL_FAILED, paths=PULL_PATHS), PULL_FAILED),
        (lambda e: e.drop_mid_stream(3, paths=PULL_PATHS), "connection to the model server"),
    ],
    ids=["error-line", "dropped"],
)
async def test_a_failing_pull_says_why_and_the_next_pull_works(
    tmp_path: Path, inject: Callable[[OllamaEmulator], None], told: str
) -> None:
    async with world(tmp_path, ollama_options={"pullable": PULLABLE}) as w:
        inject(w.ollama)
        rec = await pull(w)
        note = await wait_private_note(rec)
        assert f"`{MODEL}`" in note and told in note, note  # which pull, and why
        assert READY not in shown(rec) and MODEL not in w.ollama.models
        assert len(private_notes(rec)) == 1, "told more than once"

        question = "Can you answer without it?"
        w.ollama.set_reply("Yes, with the model I have.")
        messages = await finished(await ask(w, question), timeout=WAIT)
        assert pages_without_footer(messages) == ["Yes, with the model I have."]

        again = await pull(w)
        await again.wait_done(lambda r: shown(r) == READY, timeout=WAIT)
        await assert_keeps_serving(w, model=MODEL)
        await assert_stored(w, answered=[question, "And the next question?"])
