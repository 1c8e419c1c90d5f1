"""Chaos: the gateway goes away while an answer streams.

The answer is written through REST, which does not need the gateway: it completes while the
bot reconnects. discord.py RESUMEs the session (no second IDENTIFY), gets what was dispatched
meanwhile, and the bot answers the next question.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.discord_chaos import (
    answer_to,
    edged_world,
    next_question_answered,
    stored_once,
)
from tests.e2e.test_ask import ask, finished, pages_without_footer
from tests.emulators.discord_server import InteractionRecord

SLOW = 60  # tokens per second: an answer streams for about a second


def streaming(rec: InteractionRecord) -> bool:
    return rec.original is not None and "w3 " in rec.original.content


async def whole(rec: InteractionRecord, question: str) -> None:
    messages = await finished(rec, timeout=20)
    assert "".join(pages_without_footer(messages)) == answer_to(question)


async def test_op7_reconnect_mid_answer_and_a_question_asked_meanwhile(tmp_path: Path) -> None:
    async with edged_world(tmp_path, tokens_per_second=SLOW) as w:
        first = await ask(w, "Streaming through a reconnect?")
        await first.wait_done(streaming)
        await w.discord.request_reconnect(wait=False)
        # Dispatched while the bot is away: replayed to it when it RESUMEs.
        meanwhile = await ask(w, "Asked while reconnecting?", user=w.bob)
        await w.discord.wait_resumed(1)
        await whole(first, "Streaming through a reconnect?")
        await whole(meanwhile, "Asked while reconnecting?")
        assert w.discord.identifies == 1

        asked = ("Streaming through a reconnect?", "Asked while reconnecting?")
        await stored_once(w, *asked)
        await next_question_answered(w, *asked)


async def test_a_dropped_socket_mid_answer_while_the_gateway_is_down(tmp_path: Path) -> None:
    async with edged_world(tmp_path, tokens_per_second=SLOW) as w:
        rec = await ask(w, "Streaming through a dropped socket?")
        await rec.wait_done(streaming)
        assert await w.edge.drop_gateway() == 1
        w.edge.gateway_status = 503  # and new gateway connections fail for a while
        attempts = w.edge.gateway_attempts
        await w.discord.wait_for(lambda: w.edge.gateway_attempts > attempts, timeout=10)
        await whole(rec, "Streaming through a dropped socket?")  # REST does not need it
        w.edge.gateway_status = None
        await w.discord.wait_resumed(1, timeout=30)
        assert w.discord.identifies == 1

        await stored_once(w, "Streaming through a dropped socket?")
        await next_question_answered(w, "Streaming through a dropped socket?")
