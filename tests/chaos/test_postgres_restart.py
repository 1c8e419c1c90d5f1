"""PostgreSQL stopped and started again on the same port while the real bot (create_bot,
against the emulators) answers in several channels, with no restart of the bot.

Its own throwaway server (tests/support/postgres.py, a few seconds): the run's shared server
cannot be stopped from a test, and this way the test runs in the default (SQLite) run too.

While the server is down: an answer that ends is shown whole and says it was not saved; a
question asked is refused with the database's message. Once it is back: the answers still
streaming are stored, each once; every channel's next question is answered with the
history that was stored.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bot.core.errors import StorageError
from bot.presentation.answering import NOT_SAVED
from tests.chaos.invariants import check_turns, settled_turns
from tests.e2e.conftest import chat_bodies, e2e_settings, private_notes, running_bot
from tests.e2e.test_ask import finished, pages_without_footer
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord
from tests.emulators.ollama_server import OllamaEmulator
from tests.support import postgres

# The long answers stream for fifty seconds unless sped up: they outlive the outage (a few
# seconds), and are sped up once it is over.
SLOW_TOKENS_PER_SECOND = 4
LONG = " ".join(f"word{i}" for i in range(200))
SHORT = "Short answer."  # ends while the server is down
WAIT_SECONDS = 15.0
OUTAGE_STALL_SECONDS = 600  # ended by the test (end_stalls) once the server is down
STREAMING = 3  # channels whose long answer outlives the outage
ROOMS = STREAMING + 2  # + one whose answer ends during it, + one asked during it

needs_server = pytest.mark.skipif(
    not postgres.available(), reason="the PostgreSQL server binaries are not installed"
)


@asynccontextmanager
async def own_server() -> AsyncIterator[tuple[postgres.PostgresServer, str]]:
    # Under /tmp (reachable by the server's user), unique: runs at once must not share it.
    server = postgres.PostgresServer(tempfile.mkdtemp(prefix="ollacord-pg-chaos-", dir="/tmp"))
    admin = await asyncio.to_thread(server.start)
    try:
        yield server, await asyncio.to_thread(postgres.create_database, admin, "chaos")
    finally:
        await asyncio.to_thread(server.stop)


def failed_writes(caplog: pytest.LogCaptureFixture, logger: str) -> int:
    return sum(
        r.name == logger and "database write failed" in r.getMessage() for r in caplog.records
    )


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def shown(rec: InteractionRecord) -> str:
    return "\n".join(m.content for m in [rec.original, *rec.followups] if m and not m.deleted)


@needs_server
async def test_postgresql_restarted_while_answering(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        own_server() as (server, url),
        DiscordEmulator() as discord_emu,
        OllamaEmulator(tokens_per_second=SLOW_TOKENS_PER_SECOND) as ollama,
    ):
        guild = discord_emu.add_guild("Test Guild")
        rooms = [discord_emu.add_channel(guild.id, f"room{i}") for i in range(ROOMS)]
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        # The short answer's stall lasts as long as stopping the server takes.
        settings = e2e_settings(ollama, url, guild, STREAM_IDLE_TIMEOUT="120")

        async def ask(room: int, prompt: str) -> InteractionRecord:
            return await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=rooms[room].id,
                guild_id=guild.id,
                options={"prompt": prompt},
            )

        ollama.set_reply(lambda body: SHORT if "short" in body["messages"][-1]["content"] else LONG)
        async with running_bot(discord_emu, settings) as bot:
            store = bot.manager.store
            longs = [await ask(room, f"long, in room{room}") for room in range(STREAMING)]
            # The short answer waits after its first word until the server is down.
            ollama.stall_mid_stream(1, OUTAGE_STALL_SECONDS, prompt="short")
            ending = await ask(STREAMING, "short, before the outage")
            for rec in longs:
                await rec.wait_done(lambda r: r.original is not None and "word1" in shown(r))
            await ending.wait_done(lambda r: r.original is not None and "Short" in shown(r))
            live = bot.live_replies
            assert live is not None
            await wait_until(lambda: len(live._stored) == STREAMING + 1)  # each reply recorded
            await asyncio.to_thread(server.pause)

            ollama.end_stalls()
            await ending.wait_done(lambda r: r.original is not None and NOT_SAVED in shown(r))
            assert shown(ending).startswith(SHORT) and "▌" not in shown(ending)
            refused = await ask(STREAMING + 1, "asked in the outage")
            await refused.wait_done(lambda r: r.original is not None and "⚠️" in shown(r))
            assert StorageError.user_message in shown(refused)
            assert not any(rec.original and "tokens" in shown(rec) for rec in longs)
            # The ending reply's record cannot be forgotten meanwhile: said, and tried later.
            await wait_until(lambda: failed_writes(caplog, "bot.storage.live_replies") > 0)

            await asyncio.to_thread(server.resume)
            ollama.tokens_per_second = None  # the rest of the long answers at once
            for rec in longs:
                assert pages_without_footer(await finished(rec, timeout=30)) == [LONG]
                assert NOT_SAVED not in shown(rec) and not private_notes(rec)

            for room in range(ROOMS):  # served again, each with the history it stored
                session = f"channel:{rooms[room].id}"
                stored = room < STREAMING
                await settled_turns(store, session, at_least=int(stored))
                after = await ask(room, f"after, in room{room}")
                assert pages_without_footer(await finished(after, timeout=30)) == [LONG]
                await settled_turns(store, session, at_least=int(stored) + 1)
                earlier = [f"long, in room{room}"] if stored else []
                check_turns(
                    await store.messages(session),
                    answered=[*earlier, f"after, in room{room}"],
                    unanswered=["short, before the outage", "asked in the outage"],
                )
                history = [m["content"] for m in chat_bodies(ollama)[-1]["messages"]]
                assert history[-1] == f"after, in room{room}"
                assert [m for m in history[:-1] if m in earlier or m == LONG] == (
                    [*earlier, LONG] if stored else []
                )
        # A failed write's parameters (the replies' interaction tokens) are not in the log.
        asked = [*longs, ending, refused]
        assert not [rec.token for rec in asked if rec.token in caplog.text]
