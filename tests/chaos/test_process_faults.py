"""The process killed or stopped mid-answer: `python -m bot` against the emulators, with three
answers in flight (two public, one private) in a conversation that already has a turn.

Whatever the fault, every completed turn is stored once and whole, nothing half-stored, no
reply is left with a cursor or a Stop button, and the bot started again answers the next
question with the conversation's whole history.

- SIGTERM or SIGINT with a long enough grace: the answers finish and are stored whole.
- SIGTERM or SIGINT with a short grace: they end with the restart notice and what they had
  said is stored, as after the Stop button.
- SIGKILL: nothing of theirs is stored; the next start ends the replies with a notice.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.invariants import check_turns
from tests.e2e.conftest import private_notes
from tests.emulators.discord_server import InteractionRecord
from tests.support.processes import (
    CRASHED,
    CURSOR,
    RESTARTING,
    Setup,
    finished,
    last_message,
    setup,
    streaming,
)

TOKENS_PER_SECOND = 20
WHOLE_WORDS = 60  # three seconds: finishes well within a 30 s grace
LONG_WORDS = 400  # twenty seconds: outlasts a 1 s grace, and is cut by a kill
BEFORE = "before the fault"
AFTER = "after the fault"
LATE = "asked while stopping"
IN_FLIGHT = ("long, in room0", "long and private, in room1", "long, in room2")


@dataclass(frozen=True)
class Fault:
    name: str
    sent: signal.Signals
    grace: str  # SHUTDOWN_GRACE_SECONDS
    words: int  # of each answer in flight
    ending: str  # "whole", "interrupted" or "crashed"


# SIGTERM and SIGINT take the same path (bot.presentation.shutdown.STOP_SIGNALS): by
# default each signal is sent once, with one of the two graces; OLLACORD_CHAOS_ALL=1 adds
# the other two pairs (about 20 s each).
ALL = os.environ.get("OLLACORD_CHAOS_ALL") == "1"
MIRRORED = pytest.mark.skipif(not ALL, reason="the same path as another row: OLLACORD_CHAOS_ALL=1")
FAULTS = [
    Fault("sigterm-drained", signal.SIGTERM, "30", WHOLE_WORDS, "whole"),
    Fault("sigint-past-grace", signal.SIGINT, "1", LONG_WORDS, "interrupted"),
    Fault("sigkill", signal.SIGKILL, "30", LONG_WORDS, "crashed"),
    pytest.param(
        Fault("sigint-drained", signal.SIGINT, "30", WHOLE_WORDS, "whole"), marks=MIRRORED
    ),
    pytest.param(
        Fault("sigterm-past-grace", signal.SIGTERM, "1", LONG_WORDS, "interrupted"),
        marks=MIRRORED,
    ),
]


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def short_answer(prompt: str) -> str:
    return f"Short answer to {prompt}."


def replying(long: str) -> Any:
    def reply(body: dict[str, Any]) -> str:
        prompt = str(body["messages"][-1]["content"])
        return long if prompt.startswith("long") else short_answer(prompt)

    return reply


def session_in(s: Setup, room: int) -> list[dict[str, str]]:
    """The one conversation stored in room ``room`` (public or the member's own)."""
    prefix = f"channel:{s.channels[room].id}"
    found = [m for sid, m in s.conversations().items() if sid.split(":user:")[0] == prefix]
    assert len(found) <= 1, found
    return found[0] if found else []


def assert_settled(rec: InteractionRecord) -> str:
    """The reply's last message, checked to be over: no cursor, no Stop button."""
    final = last_message(rec)
    assert CURSOR not in final.content and final.components == [], final.content
    return final.content


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
async def test_a_fault_mid_answer_loses_and_doubles_nothing(tmp_path: Path, fault: Fault) -> None:
    long = words(fault.words)
    async with setup(
        tmp_path,
        tokens_per_second=TOKENS_PER_SECOND,
        SHUTDOWN_GRACE_SECONDS=fault.grace,
        MAX_QUEUED_PER_MEMBER="0",  # alice stands in for several members
    ) as s:
        s.ollama.set_reply(replying(long))
        bot = await s.start_bot()
        before = await s.ask(BEFORE)
        await before.wait_done(finished, timeout=30)
        flying = [
            await s.ask(IN_FLIGHT[0]),
            await s.ask(IN_FLIGHT[1], 1, private=True),
            await s.ask(IN_FLIGHT[2], 2),
        ]
        await asyncio.gather(*(rec.wait_done(streaming, timeout=30) for rec in flying))
        if fault.ending == "crashed":  # each reply is recorded, for the next start to end it
            await s.wait_rows("SELECT * FROM live_replies", len(flying))
        bot.proc.send_signal(fault.sent)
        if fault.ending == "whole":  # while it drains, a new question is turned away
            await bot.wait_log(fault.sent.name)
            late = await s.ask(LATE, 2)
            await late.wait_done(lambda r: bool(private_notes(r)), timeout=10)
            assert "restarting" in private_notes(late)[0]
        code = await bot.wait_exit()
        if fault.ending == "crashed":
            assert code == -signal.SIGKILL
        else:  # everything released before the process ended, the database last
            assert code == 0 and "request manager closed" in bot.text, bot.text[-3000:]
            assert "Traceback" not in bot.text

        bot = await s.start_bot()
        if fault.ending == "crashed":
            for rec in flying:
                await rec.wait_done(
                    lambda r: r.original is not None and CRASHED in last_message(r).content,
                    timeout=30,
                )
        said = []  # what each reply showed of its answer
        for rec in flying:
            text = assert_settled(rec)
            if fault.ending == "whole":
                assert text.startswith(long) and "tokens" in text
                said.append(long)
            else:
                said.append(text.split("\n\n")[0].rstrip())
                assert said[-1].startswith("word0") and long.startswith(said[-1]), text
                assert (RESTARTING if fault.ending == "interrupted" else CRASHED) in text

        stored_answers = []
        for room, question in enumerate(IN_FLIGHT):
            earlier = [BEFORE] if room == 0 else []
            if fault.ending == "crashed":
                turns = check_turns(
                    session_in(s, room), answered=earlier, unanswered=[question, LATE]
                )
            else:
                turns = check_turns(
                    session_in(s, room), answered=[*earlier, question], unanswered=[LATE]
                )
                # Whole, or what was shown before the notice (as after the Stop button).
                assert dict(turns)[question] == said[room]
            stored_answers.append(dict(turns).get(question))

        after = await s.ask(AFTER)
        await after.wait_done(finished, timeout=30)
        assert last_message(after).content.startswith(short_answer(AFTER))
        chats = [r.json or {} for r in s.ollama.requests if r.path == "/api/chat"]
        history = [(m["role"], m["content"]) for m in chats[-1]["messages"]]
        expected = [("user", BEFORE), ("assistant", short_answer(BEFORE))]
        if stored_answers[0] is not None:
            expected += [("user", IN_FLIGHT[0]), ("assistant", stored_answers[0])]
        assert [h for h in history if h[0] != "system"] == [*expected, ("user", AFTER)]
        answered = [BEFORE] + ([IN_FLIGHT[0]] if stored_answers[0] else []) + [AFTER]
        await s.wait_rows(f"SELECT * FROM messages WHERE content = '{AFTER}'", 1)
        await s.wait_rows("SELECT * FROM live_replies", 0)
        check_turns(session_in(s, 0), answered=answered)

        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        assert "Traceback" not in bot.text
