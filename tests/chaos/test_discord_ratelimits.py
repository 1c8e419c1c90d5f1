"""Chaos: Discord rate-limits the bot's writes, in every shape a 429 comes in.

discord.py waits out a 429 that carries ``Via`` and a JSON ``retry_after`` (with or without
the X-RateLimit-* headers; a global one holds every REST request); a 429 from Cloudflare
(no ``Via``) or without ``retry_after`` fails the request at once (HTTPException, KeyError),
and the reply's own retry has to carry the write. Either way the member sees the whole
answer once, its turn is stored once, and the next question is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.discord_chaos import (
    asked_in_full,
    edged_world,
    mentioned_in_full,
    next_question_answered,
    stored_once,
)
from tests.emulators.discord_faults import (
    Fault,
    globally_rate_limited,
    rate_limited,
    rate_limited_bare,
    rate_limited_body_only,
    rate_limited_without_retry_after,
)

RETRY_AFTER = 0.05
TIMES = 2  # each fault, in a row: discord.py's (or the reply's) retry must also survive one

SHAPES: dict[str, Callable[[], Fault]] = {
    "headers": lambda: rate_limited(RETRY_AFTER),
    "body-only": lambda: rate_limited_body_only(RETRY_AFTER),
    "no-retry-after": rate_limited_without_retry_after,
    "cloudflare": rate_limited_bare,
    "global": lambda: globally_rate_limited(RETRY_AFTER),
}


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_429_on_an_answers_writes(tmp_path: Path, shape: str) -> None:
    async with edged_world(tmp_path, MENTION_CHAT="true") as w:
        # /ask replies are written through webhooks (PATCH …/messages/@original).
        rule = w.edge.inject(SHAPES[shape](), count=TIMES, route_contains="/webhooks/")
        await asked_in_full(w, "Rate limited?")
        assert rule.hits == TIMES
        # A mention is answered in the channel: POST, then PATCH /channels/{id}/messages/…
        rule = w.edge.inject(
            SHAPES[shape](), count=TIMES, route_contains=f"/channels/{w.channel.id}/messages"
        )
        await mentioned_in_full(w, "Mentioned while limited?")
        assert rule.hits == TIMES
        await stored_once(w, "Rate limited?", "Mentioned while limited?")
        await next_question_answered(w, "Rate limited?", "Mentioned while limited?")
