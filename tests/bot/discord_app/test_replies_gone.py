"""Which of Discord's refusals make a reply give up at once (ReplyGone) and which are
retried: a deleted message, lost access and an expired token cannot be fixed by waiting."""

from __future__ import annotations

from types import SimpleNamespace

import discord
import pytest

from bot.discord_app.replies import gone_if_permanent
from bot.presentation.streaming import ReplyGone


def refusal(kind: type[discord.HTTPException], status: int) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason="refused")
    return kind(response, {"code": 0, "message": "refused"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "status"),
    [(discord.NotFound, 404), (discord.Forbidden, 403), (discord.HTTPException, 401)],
)
def test_refusals_no_retry_can_change_are_gone(
    kind: type[discord.HTTPException], status: int
) -> None:
    with pytest.raises(ReplyGone, match=str(status)) as gone, gone_if_permanent():
        raise refusal(kind, status)
    assert isinstance(gone.value.__cause__, kind)


@pytest.mark.parametrize("status", [500, 503, 400])
def test_other_refusals_are_left_to_the_retries(status: int) -> None:
    with pytest.raises(discord.HTTPException), gone_if_permanent():
        raise refusal(discord.HTTPException, status)
