"""What every Ollama chaos test does around its fault: ask in the channel, wait for the reply
to settle (a footer: answered; a ⚠️ notice: given up), then check the database and that the
next question is answered. Waits are conditions with deadlines; nothing is timed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.chaos.invariants import check_turns, settled_turns
from tests.e2e.conftest import World
from tests.e2e.test_ask import ask, finished, has_footer, pages_without_footer, reply_messages
from tests.emulators.discord_server import InteractionRecord

WAIT = 20.0  # seconds a reply may take to settle: generous, for a busy CI machine
NEXT_QUESTION = "And the next question?"
NEXT_ANSWER = "Still serving."


def given_up(rec: InteractionRecord) -> bool:
    """The reply ended with a warning instead of an answer."""
    messages = reply_messages(rec)
    return bool(messages) and "⚠️" in messages[-1].content


async def settled(rec: InteractionRecord, timeout: float = WAIT) -> list[str]:  # noqa: ASYNC109
    """The reply's pages once it is answered or given up and nothing moves any more."""
    await rec.wait_done(lambda r: has_footer(r) or given_up(r), timeout=timeout)
    await rec.wait_quiet()
    return [m.content for m in reply_messages(rec)]


def session_of(w: World) -> str:
    return f"channel:{w.channel.id}"


async def assert_stored(
    w: World, *, answered: Sequence[str], unanswered: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """check_turns on the channel's conversation once every answer is written."""
    assert await w.bot.manager.wait_idle(WAIT), "an answer is still running"
    await settled_turns(w.bot.manager.store, session_of(w), at_least=len(answered))
    messages: list[Any] = list(await w.bot.manager.store.messages(session_of(w)))
    return check_turns(messages, answered=answered, unanswered=unanswered)


async def assert_keeps_serving(w: World, **options: Any) -> None:
    """The next question, with the fault gone, gets its whole answer."""
    w.ollama.clear_faults()
    w.ollama.set_reply(NEXT_ANSWER)
    messages = await finished(await ask(w, NEXT_QUESTION, **options), timeout=WAIT)
    assert pages_without_footer(messages) == [NEXT_ANSWER]
