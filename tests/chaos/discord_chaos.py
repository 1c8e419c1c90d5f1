"""What the Discord chaos tests share: the real bot behind a failing Discord edge, asking by
/ask and by mention, and the checks every fault ends with (the answer shown in full, each
turn stored once, the next question answered)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.invariants import check_turns, settled_turns
from tests.e2e.conftest import World, e2e_settings, running_bot
from tests.e2e.test_ask import ask, finished, pages_without_footer
from tests.emulators.discord_faults import DiscordEdge
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    DiscordEmulator,
    Message,
    Permission,
)
from tests.emulators.ollama_server import OllamaEmulator
from tests.support import databases

NEXT_QUESTION = "And now?"


LONG = "Long"  # a question starting so is answered in more than one message
LONG_WORDS = 450  # about 2,700 characters: two pages


def answer_to(question: str) -> str:
    """Every question's own answer, long enough to be written in several edits."""
    words = LONG_WORDS if question.startswith(LONG) else 60
    return f"Answer to [{question}]: " + " ".join(f"w{i}" for i in range(words)) + "."


def reply_for(body: dict[str, Any]) -> str:
    return answer_to(str((body.get("messages") or [{}])[-1].get("content", "")))


@dataclass
class EdgedWorld(World):
    edge: DiscordEdge

    @property
    def session(self) -> str:
        return f"channel:{self.channel.id}"


@contextlib.asynccontextmanager
async def edged_world(
    tmp_path: Path, *, tokens_per_second: float | None = 300, **env: str
) -> AsyncIterator[EdgedWorld]:
    """The e2e world with every REST call and the gateway going through a ``DiscordEdge``
    from the first login on; each question is answered with ``answer_to`` it."""
    async with (
        DiscordEmulator() as discord_emu,
        DiscordEdge(discord_emu) as edge,
        OllamaEmulator(tokens_per_second=tokens_per_second) as ollama,
    ):
        # patch_discord() and READY's resume URL then send discord.py to the edge.
        discord_emu.api_base, discord_emu.gateway_url = edge.api_base, edge.gateway_url
        discord_emu.gateway.url = edge.gateway_url
        ollama.set_reply(reply_for)
        guild = discord_emu.add_guild("Test Guild")
        channel = discord_emu.add_channel(guild.id, "general")
        alice, bob, admin = (discord_emu.add_user(n) for n in ("alice", "bob", "admin"))
        for user in (alice, bob):
            discord_emu.add_member(guild.id, user.id)
        discord_emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        async with databases.current().database_async(tmp_path, "bot.db") as database_url:
            settings = e2e_settings(ollama, database_url, guild, **env)
            async with running_bot(discord_emu, settings) as bot:
                yield EdgedWorld(
                    discord_emu, ollama, bot, guild, channel, alice, bob, admin, settings, edge
                )


async def asked_in_full(w: World, question: str, *, timeout: float = 20.0) -> list[Message]:  # noqa: ASYNC109
    """/ask ``question``; its pages once the footer shows, which must hold the whole answer."""
    rec = await ask(w, question)
    messages = await finished(rec, timeout=timeout)
    await rec.wait_quiet()
    assert "".join(pages_without_footer(messages)) == answer_to(question)
    return messages


def bot_replies(w: World) -> list[Message]:
    return [
        m for m in w.discord.channel_messages(w.channel.id) if m.author_id == w.discord.bot_user_id
    ]


async def mentioned_in_full(w: World, question: str, *, timeout: float = 20.0) -> Message:  # noqa: ASYNC109
    """Mention the bot with ``question``; its reply once complete, with the whole answer."""
    asked = await w.discord.send_user_message(
        w.channel.id, w.alice.id, question, mentions=[w.discord.bot_user_id]
    )

    def reply() -> Message | None:
        return next(
            (
                m
                for m in bot_replies(w)
                if m.reference is not None
                and int(m.reference["message_id"]) == asked.id
                and "\n-# " in m.content
            ),
            None,
        )

    await w.discord.wait_for(lambda: reply() is not None, timeout=timeout)
    message = reply()
    assert message is not None
    assert message.content.split("\n-# ")[0] == answer_to(question)
    return message


async def stored_once(w: EdgedWorld, *answered: str, unanswered: tuple[str, ...] = ()) -> None:
    """Each of ``answered`` stored exactly once with its whole answer, none of ``unanswered``."""
    await settled_turns(w.bot.manager.store, w.session, at_least=len(answered))
    turns = check_turns(
        await w.bot.manager.store.messages(w.session), answered=answered, unanswered=unanswered
    )
    assert dict(turns) == {q: answer_to(q) for q in answered}, turns


async def next_question_answered(w: EdgedWorld, *before: str, mention: bool = False) -> None:
    """With the fault over, the next question is answered in full and stored after the
    earlier ones."""
    if mention:
        await mentioned_in_full(w, NEXT_QUESTION)
    else:
        await asked_in_full(w, NEXT_QUESTION)
    await stored_once(w, *before, NEXT_QUESTION)
