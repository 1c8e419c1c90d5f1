"""Ollama's faults, one table: the real bot asks the emulator while it fails in each way a
real server does. Each row says what the member sees (the reply's status lines and how it
ends), whether the question is answered (then stored once, whole) or given up (then not
stored at all), and every row checks that the next question is answered.

A fault before the first token is retried (RETRY_BACKOFF is 0.01 s here), so a passing one
ends in the whole answer and one stored turn; one that outlasts the retries, or strikes
after text was shown, ends in a ⚠️ notice under whatever was shown, and nothing is stored.

"500 before the stream" is refused at once; "500 during" fails once the request was queued
and its model loaded (the runner dying: Ollama sends no header before the first token, so
it is still a status); after a token the same failure can only be an error line (its rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.ollama_world import (
    NEXT_QUESTION,
    assert_keeps_serving,
    assert_stored,
    settled,
)
from tests.e2e.conftest import world
from tests.e2e.test_ask import FOOTER_LINE, ask, chat_requests
from tests.emulators.ollama_server import BUSY, OllamaEmulator

REPLY = " ".join(f"part{i}" for i in range(12))
SHOWN_BEFORE_FAULT = "part0 part1 part2"  # the three tokens a mid-stream fault lets through
RETRIES = 3  # the bot's MAX_RETRIES default: a fault one more time than this is given up
EVERY_ATTEMPT = RETRIES + 1
# FIRST_TOKEN_TIMEOUT / STREAM_IDLE_TIMEOUT for the stall rows, in seconds: short, yet long
# enough that the answer after the stall never trips it on a loaded CI machine.
SHORT = "1"
STALL = 30.0  # far longer than SHORT: the watchdog, not the stall's end, decides

Inject = Callable[[OllamaEmulator], None]


@dataclass(frozen=True)
class Case:
    id: str
    inject: Inject
    answered: bool  # True: the whole answer is shown and stored; False: a ⚠️ notice
    saw: tuple[str, ...] = ()  # status lines or notices the member saw on the way
    partial: str = ""  # the answer's text shown above the notice (given-up rows)
    attempts: int = 1  # /api/chat requests the question made
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # of /ask


def fail(times: int, status: int = 500, error: str = "internal error") -> Inject:
    return lambda emu: emu.fail_next(times, status=status, error=error)


CASES = [
    Case(
        "refused",
        lambda emu: emu.refuse_connections(),
        answered=False,
        saw=("🔁", "Cannot reach the model server"),
        attempts=0,  # nothing reaches a server that does not listen
    ),
    Case("500-before-once", fail(1), answered=True, saw=("🔁",), attempts=2),
    Case(
        "500-before-always",
        fail(EVERY_ATTEMPT),
        answered=False,
        saw=("🔁", "internal error"),
        attempts=EVERY_ATTEMPT,
    ),
    Case(
        "500-during-once",
        lambda emu: emu.fail_in_runner(),
        answered=True,
        saw=("🔁",),
        attempts=2,
    ),
    Case(
        "500-during-always",
        lambda emu: emu.fail_in_runner(EVERY_ATTEMPT),
        answered=False,
        saw=("🔁", "model runner has unexpectedly stopped"),
        attempts=EVERY_ATTEMPT,
    ),
    Case(
        "error-line-before-first-token",
        lambda emu: emu.error_mid_stream(after_tokens=0),
        answered=True,
        saw=("🔁",),
        attempts=2,
    ),
    Case(
        "error-line-mid-stream",
        lambda emu: emu.error_mid_stream(after_tokens=3),
        answered=False,
        saw=("model runner has unexpectedly stopped",),
        partial=SHOWN_BEFORE_FAULT,
    ),
    Case("503-once", fail(1, 503, BUSY), answered=True, saw=("🔁",), attempts=2),
    Case(
        "503-always",
        fail(EVERY_ATTEMPT, 503, BUSY),
        answered=False,
        saw=("🔁", "busy"),
        attempts=EVERY_ATTEMPT,
    ),
    Case(
        "404-model-without-fallback",
        lambda emu: None,
        answered=False,
        saw=("`no-such-model`", "/model pull"),
        options={"model": "no-such-model"},
    ),
    Case(
        "404-model-with-fallback",
        lambda emu: None,
        answered=True,
        saw=("↪️ `no-such-model` is not available; asking `qwen3`",),
        attempts=2,
        env={"FALLBACK_MODELS": "qwen3"},
        options={"model": "no-such-model"},
    ),
    Case(
        "stall-before-first-token-once",
        lambda emu: emu.stall_before_first_token(STALL),
        answered=True,
        saw=("🔁",),
        attempts=2,
        env={"FIRST_TOKEN_TIMEOUT": SHORT},
    ),
    Case(
        "stall-before-first-token-always",
        lambda emu: emu.stall_before_first_token(STALL, count=EVERY_ATTEMPT),
        answered=False,
        saw=("🔁", "did not start answering within 1 s"),
        attempts=EVERY_ATTEMPT,
        env={"FIRST_TOKEN_TIMEOUT": SHORT},
    ),
    Case(
        "stall-mid-stream",
        lambda emu: emu.stall_mid_stream(after_tokens=3, seconds=STALL),
        answered=False,
        saw=("stopped sending",),
        partial=SHOWN_BEFORE_FAULT,
        env={"STREAM_IDLE_TIMEOUT": SHORT},
    ),
    Case(
        "drop-before-first-token",
        lambda emu: emu.drop_mid_stream(after_tokens=0),
        answered=True,
        saw=("🔁",),
        attempts=2,
    ),
    Case(
        "drop-mid-stream",
        lambda emu: emu.drop_mid_stream(after_tokens=3),
        answered=False,
        saw=("connection to the model server was lost",),
        partial=SHOWN_BEFORE_FAULT,
    ),
]


def everything_shown(rec_pages: list[str], edits: list[str]) -> str:
    return "\n".join([*edits, *rec_pages])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_an_ollama_fault(tmp_path: Path, case: Case) -> None:
    question = f"What happens when {case.id}?"
    async with world(tmp_path, **case.env) as w:
        w.ollama.set_reply(REPLY)
        case.inject(w.ollama)
        rec = await ask(w, question, **case.options)
        pages = await settled(rec)
        assert rec.original is not None
        history = everything_shown(pages, [text for _, text in rec.original.edits])
        for seen in case.saw:
            assert seen in history, (seen, history)
        assert rec.original.components == [], "the Stop button outlived the answer"
        assert len(chat_requests(w)) == case.attempts

        if case.answered:
            assert len(pages) == 1 and FOOTER_LINE.sub("", pages[0]) == REPLY
        else:
            [page] = pages
            assert page.startswith(f"{case.partial}\n\n⚠️" if case.partial else "⚠️"), page
            assert "part3" not in page  # nothing after the fault, and no second answer

        await w.ollama.accept_connections()  # undoes "refused"; a no-op for the others
        await assert_keeps_serving(w)
        turns = await assert_stored(
            w,
            answered=[question, NEXT_QUESTION] if case.answered else [NEXT_QUESTION],
            unanswered=[] if case.answered else [question],
        )
        if case.answered:
            assert turns[0] == (question, REPLY)
