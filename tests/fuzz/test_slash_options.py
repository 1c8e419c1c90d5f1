"""Fuzz: slash option values (empty, maximal, control characters, RTL, zero-width) through
the functions the cogs call on them (thread names, persona names, /settings tools names,
/settings keep_alive), and a handful through the real bot against the emulators.

Properties: each function returns what its callers rely on or refuses with
InvalidRequestError in one line; a thread's name is one line of 1-100 characters that never
pings. End to end, every value gets an answer or a polite private refusal, never a traceback
(checked in the bot's log), and the bot answers the next question.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.errors import InvalidRequestError
from bot.core.personas import MAX_NAME_CHARS, checked_name
from bot.core.queries import validate_keep_alive
from bot.discord_app.threads import MAX_THREAD_NAME_CHARS, thread_name
from bot.discord_app.tools_panel import tool_names
from bot.presentation.answering import MAX_PROMPT_CHARS
from tests.e2e.conftest import wait_private_note, world
from tests.e2e.test_ask import finished, has_footer
from tests.fuzz.support import AWKWARD, awkward_text, fuzz

# Thread names never ping (Discord shows them raw); the bot still keeps mention syntax out.
PINGS = re.compile(r"<@[!&]?\d+>|@(?:everyone|here)\b", re.IGNORECASE)
values = awkward_text(300) | st.sampled_from(AWKWARD) | st.integers(0, 7000).map(lambda n: "é" * n)


@fuzz(300)
@given(question=values | st.lists(st.sampled_from(AWKWARD), max_size=30).map("".join))
@example(question="<@\u200b123> @\u200beveryone <@&4\u200b5> @HERE")
@example(question="\u200b\u200f\n\t ")
@example(question="x" * 6000)
def test_thread_names_are_one_line_without_pings(question: str) -> None:
    name = thread_name(question)
    assert 1 <= len(name) <= MAX_THREAD_NAME_CHARS
    assert "\n" not in name and "\r" not in name and name == name.strip()
    assert not PINGS.search(name), f"{name!r} pings"


@fuzz(300)
@given(value=values)
@example(value="a" * MAX_NAME_CHARS)
@example(value="a" * (MAX_NAME_CHARS + 1))
@example(value="ＡＢＣ")
def test_names_and_keep_alive_are_checked(value: str) -> None:
    for check in (checked_name, tool_names, validate_keep_alive):
        try:
            result = check(value)
        except InvalidRequestError as exc:
            assert str(exc).strip() and "\n" not in str(exc)
            continue
        if check is checked_name:
            assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", str(result))
            assert len(str(result)) <= MAX_NAME_CHARS
        if check is tool_names and result is not None:
            assert all(name == name.strip() and name for name in result)


# --- through the real bot ---------------------------------------------------------------

SEED = 14


def e2e_values() -> list[str]:
    """The values the bot is asked with: the awkward pieces and a few random mixes of them."""
    rng = random.Random(SEED)
    print(f"e2e values seeded with {SEED}")
    mixes = ["".join(rng.choices(AWKWARD, k=rng.randint(2, 12))) for _ in range(3)]
    return [
        "\u200b",
        "\u202eolleh\u202c",
        "\x00\x1b[2J",
        "שלום " * 5,
        "é" * MAX_PROMPT_CHARS,
        *mixes,
    ]


async def test_awkward_values_through_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with world(tmp_path) as w:
        for value in e2e_values():
            asked = await w.discord.invoke_slash(
                "ask", user_id=w.alice.id, **w.where, options={"prompt": value}
            )
            await asked.wait_done(
                lambda r: has_footer(r) or bool(r.original and r.original.ephemeral)
            )
            if not has_footer(asked):  # refused: privately, in words
                note = await wait_private_note(asked)
                assert note.strip() and "Traceback" not in note
            for sub, options in (
                ("keep_alive", {"value": value}),
                ("tools", {"names": value}),
            ):
                rec = await w.discord.invoke_slash(
                    "settings", subcommand=sub, user_id=w.admin.id, **w.where, options=options
                )
                note = await wait_private_note(rec)
                assert note.strip() and "Traceback" not in note, (sub, value)
            rec = await w.discord.invoke_slash(
                "persona",
                subcommand="create",
                user_id=w.admin.id,
                **w.where,
                options={"name": value[:MAX_NAME_CHARS], "system_prompt": value[:4000]},
            )
            note = await wait_private_note(rec)
            assert note.strip() and "Traceback" not in note, value
        # Still serving.
        after = await w.discord.invoke_slash(
            "ask", user_id=w.alice.id, **w.where, options={"prompt": "still there?"}
        )
        await finished(after)
    unhandled = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert not unhandled, [r.getMessage() for r in unhandled]
