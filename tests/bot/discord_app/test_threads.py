"""Thread names from questions, and when an /ask answer opens a thread."""

from __future__ import annotations

from unittest.mock import create_autospec

import discord
import pytest

from bot.core.errors import InvalidRequestError
from bot.discord_app.threads import (
    MAX_THREAD_NAME_CHARS,
    UNNAMED_THREAD,
    thread_name,
    wants_thread,
)


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("Why is the sky blue?", "Why is the sky blue?"),
        ("<@123> <@!456> @everyone <@&789> @HERE hi <#42>", "hi"),
        ("two\nlines\t and  spaces", "two lines and spaces"),
        ("<@123> @everyone", UNNAMED_THREAD),
        ("```", UNNAMED_THREAD),
        ("ping a@everyone.example", "ping a .example"),  # whatever Discord would parse
    ],
)
def test_names_are_one_line_without_mentions(question: str, name: str) -> None:
    assert thread_name(question) == name


def test_long_questions_are_cut_at_a_word() -> None:
    name = thread_name("alpha " * 40)
    assert len(name) <= MAX_THREAD_NAME_CHARS and name.endswith("alpha…")
    unbroken = thread_name("x" * 300)
    assert len(unbroken) == MAX_THREAD_NAME_CHARS and unbroken.endswith("…")


def text_channel() -> discord.TextChannel:
    return create_autospec(discord.TextChannel, instance=True, spec_set=True)


def thread() -> discord.Thread:
    return create_autospec(discord.Thread, instance=True, spec_set=True)


def test_the_thread_option_wins_over_the_channels_choice() -> None:
    channel = text_channel()
    assert wants_thread(None, True, private=False, channel=channel)
    assert not wants_thread(None, False, private=False, channel=channel)
    assert not wants_thread(False, True, private=False, channel=channel)
    assert wants_thread(True, False, private=False, channel=channel)


def test_private_answers_and_threads() -> None:
    # The channel's choice gives way to privacy; asking for both is refused.
    assert not wants_thread(None, True, private=True, channel=text_channel())
    with pytest.raises(InvalidRequestError, match="private answer"):
        wants_thread(True, False, private=True, channel=text_channel())


def test_where_no_thread_can_open() -> None:
    assert not wants_thread(True, True, private=False, channel=thread())  # answered there
    with pytest.raises(InvalidRequestError, match="text channels"):
        wants_thread(True, False, private=False, channel=None)  # a DM's channel may be unknown
    assert not wants_thread(None, True, private=False, channel=None)
