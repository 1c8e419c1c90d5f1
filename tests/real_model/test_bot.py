"""The real bot (create_bot) against the Discord emulator, with OLLAMA_HOST at a server of
real models: what a member is shown is exactly what the model wrote, and what is stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.discord_app.routing import channel_key
from tests.e2e.conftest import wait_private_note
from tests.e2e.test_ask import finished, footer_of, pages_without_footer, reassemble
from tests.e2e.test_structured import json_block
from tests.emulators.discord_server import InteractionRecord
from tests.real_model.conftest import RealWorld, needs, real_world
from tests.real_model.decoding import CANCELLED
from tests.real_model.models import SMOLLM2
from tests.real_model.test_manager import PROSE

if TYPE_CHECKING:
    from tests.real_model.completion import Generation
    from tests.real_model.engine import Engine
    from tests.real_model.server import RealModelServer

pytestmark = pytest.mark.real_model

ANSWER_TIMEOUT = 240.0  # a deadline on two busy cores, not a measure of speed


@pytest.fixture
async def rw(
    tmp_path: Path, real_ollama: RealModelServer, engine: Engine
) -> AsyncIterator[RealWorld]:
    needs(engine, SMOLLM2)
    async with real_world(tmp_path, real_ollama, EMBEDDING_MODEL=SMOLLM2) as world:
        yield world


async def set_options(rw: RealWorld, **options: Any) -> None:
    rec = await rw.discord.invoke_slash(
        "settings", subcommand="options", user_id=rw.admin.id, **rw.where, options=options
    )
    assert "Options now" in await wait_private_note(rec)


async def ask(rw: RealWorld, prompt: str, **options: Any) -> InteractionRecord:
    return await rw.discord.invoke_slash(
        "ask", user_id=rw.alice.id, **rw.where, options={"prompt": prompt, **options}
    )


def answer_to(rw: RealWorld, question: str) -> Generation:
    """The generation that answered ``question`` (the bot may ask the model other things,
    such as a conversation's running summary)."""
    (gen,) = [g for g in rw.ollama.generations if g.messages[-1].get("content") == question]
    return gen


async def stored(rw: RealWorld, count: int) -> list[tuple[str, str]]:
    """The channel's conversation once ``count`` messages are stored: the final edit is
    shown before the turn is written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while True:
        messages = await rw.bot.manager.store.messages(channel_key(rw.channel.id))
        if len(messages) >= count or loop.time() > deadline:
            return [(m["role"], m["content"]) for m in messages]
        await asyncio.sleep(0.05)


async def test_ask_shows_exactly_what_the_model_wrote_and_remembers_it(rw: RealWorld) -> None:
    await set_options(rw, num_predict=60, temperature=0.0, seed=3)
    first = await finished(await ask(rw, "Tell me about the sea."), ANSWER_TIMEOUT)
    gen = answer_to(rw, "Tell me about the sea.")
    assert reassemble(pages_without_footer(first), gen.content) == gen.content
    # The footer's figures are the server's: its eval_count over its eval_duration.
    speed = gen.eval_count / (gen.stats["eval_duration"] / 1e9)
    cut = " · cut at the length limit" if gen.done_reason == "length" else ""
    footer = f"-# {SMOLLM2} · {gen.eval_count} tokens · {speed:.1f} tok/s{cut}"
    assert footer_of(first) == footer
    assert [m.allowed_mentions for m in first] == [{"parse": []}] * len(first)

    second = await finished(await ask(rw, "And about rivers?"), ANSWER_TIMEOUT)
    again = answer_to(rw, "And about rivers?")
    assert reassemble(pages_without_footer(second), again.content) == again.content
    # The first turn went back to the model as it was shown, in smollm2's ChatML.
    asked = [(m["role"], m["content"]) for m in again.messages if m["role"] != "system"]
    assert asked == [
        ("user", "Tell me about the sea."),
        ("assistant", gen.content),
        ("user", "And about rivers?"),
    ]
    assert f"<|im_start|>assistant\n{gen.content}<|im_end|>" in again.prompt
    assert await stored(rw, 4) == [*asked, ("assistant", again.content)]


async def test_the_stop_button_stops_the_model(rw: RealWorld) -> None:
    await set_options(rw, num_predict=400, temperature=0.8, seed=9)
    rec = await ask(rw, "Write a long story about a lighthouse keeper.")
    await rec.wait_done(
        lambda r: r.original is not None and bool(r.original.components)
        and len(r.original.content) > 20,
        timeout=ANSWER_TIMEOUT,
    )  # fmt: skip
    assert rec.original is not None
    pressed = await rw.discord.press_button(rec.original.id, 0, user_id=rw.alice.id)
    await pressed.wait_done(lambda r: r.acked)
    messages = await finished(rec, ANSWER_TIMEOUT)
    (gen,) = rw.ollama.generations
    await rw.discord.wait_for(lambda: gen.finished.is_set(), timeout=60)
    assert gen.done_reason == CANCELLED and gen.eval_count < 400
    assert footer_of(messages).endswith("stopped")
    (shown,) = pages_without_footer(messages)
    assert gen.content.startswith(shown)
    assert (await stored(rw, 2))[-1] == ("assistant", shown)


async def test_a_json_answer_is_shown_as_the_model_wrote_it(rw: RealWorld) -> None:
    await set_options(rw, num_predict=80, temperature=0.0)
    messages = await finished(await ask(rw, "A colour, as JSON.", format="json"), ANSWER_TIMEOUT)
    (gen,) = rw.ollama.generations
    assert gen.options.get("num_predict") == 80 and gen.done_reason == "stop"
    (text,) = pages_without_footer(messages)
    assert json_block(text) == json.loads(gen.content)


async def test_a_long_conversation_in_a_small_window_is_sized_and_shown_whole(
    rw: RealWorld,
) -> None:
    # Each question is about a third of a 512-token window: by the third the history cannot
    # all fit. The bot's path must size what it sends as the manager alone does: the server
    # never cuts a prompt, and every answer shows. (It found that the bot's tools, whose
    # schemas smollm2's template writes into the prompt, were sized as taking no room: the
    # first question already went over the window. They are left out of a window this small.)
    await set_options(rw, num_ctx=512, num_predict=24, temperature=0.0, seed=5)
    for round_ in range(4):
        question = f"{PROSE}{PROSE}Question {round_}?"
        messages = await finished(await ask(rw, question), ANSWER_TIMEOUT)
        gen = answer_to(rw, question)
        assert reassemble(pages_without_footer(messages), gen.content) == gen.content
        assert gen.window == 512 and gen.prompt_tokens + 24 <= 512
    assert rw.ollama.truncations == []
    last = answer_to(rw, f"{PROSE}{PROSE}Question 3?")
    assert 1 < len([m for m in last.messages if m["role"] == "user"]) < 4  # some history kept
