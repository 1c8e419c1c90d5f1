"""Chaos: an interaction acknowledged too late (Discord's 10062 Unknown interaction).

The member was shown "The application did not respond" by Discord itself; the bot cannot
reach them through that interaction any more. It must not answer (nobody would see it),
store nothing for that question, log the failure, and leave everything else alone: another
member's answer streaming in the same conversation finishes, the next question is answered.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.chaos.discord_chaos import (
    answer_to,
    edged_world,
    next_question_answered,
    stored_once,
)
from tests.e2e.test_ask import ask, finished, pages_without_footer

UNKNOWN_INTERACTION = {"message": "Unknown interaction", "code": 10062}


async def test_a_late_acknowledgement_beside_an_answer_in_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with edged_world(tmp_path, tokens_per_second=60) as w:
        first = await ask(w, "Answered meanwhile?")
        await first.wait_done(lambda r: r.original is not None and "w3 " in r.original.content)
        deadline = w.discord.rest.config.ack_deadline
        w.discord.rest.config.ack_deadline = 0.0  # every acknowledgement now comes too late
        try:
            with caplog.at_level(logging.WARNING):
                late = await ask(w, "Too late?", user=w.bob)
                await late.wait_done(lambda r: len(r.errors) == 1, timeout=10)
                messages = await finished(first, timeout=20)
                assert await w.bot.manager.wait_idle(5)
                # The error handler runs after Discord's refusal: its line may come later.
                await w.discord.wait_for(
                    lambda: any("expired before" in r.getMessage() for r in caplog.records),
                    timeout=10,
                )
        finally:
            w.discord.rest.config.ack_deadline = deadline

        # Only the acknowledgement: a private word about it would get 10062 as well.
        assert late.errors == [UNKNOWN_INTERACTION]
        assert late.original is None and late.followups == []  # nothing shown for nobody
        assert "".join(pages_without_footer(messages)) == answer_to("Answered meanwhile?")
        logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
        # One warning line: an expired interaction is no fault in the bot's code (it used to
        # be an ERROR "unexpected error in /ask" with a traceback).
        [expired] = [r for r in logged if "expired before the bot answered" in r.getMessage()]
        assert "Unknown interaction" in expired.getMessage()
        assert not [r for r in logged if r.levelno >= logging.ERROR or r.exc_info], logged

        await stored_once(w, "Answered meanwhile?", unanswered=("Too late?",))
        await next_question_answered(w, "Answered meanwhile?")
        await stored_once(w, "Answered meanwhile?", "And now?", unanswered=("Too late?",))
