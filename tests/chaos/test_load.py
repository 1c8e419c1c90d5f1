"""The load run (bench.load) in the suite, and what it found.

The default run is the reduced form: 100 questions over 20 channels and 10 members, one
repetition, faults drawn from a printed seed. ``OLLACORD_LOAD=full`` adds the full form
(500 questions, 100 channels, 50 members, three repetitions, memory growth bounded);
``OLLACORD_LOAD_SEED=N`` replays another schedule. ``OLLACORD_CI_LOAD=full bash .ci/run``
runs the full form in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.load import GROWTH_BOUND_MIB, LoadConfig, LoadReport, run_load
from tests.chaos.invariants import check_turns
from tests.e2e.conftest import World, private_notes, stored_messages, world
from tests.e2e.test_ask import ask, finished, pages_without_footer

FULL = os.environ.get("OLLACORD_LOAD", "").lower() == "full"
SEED = int(os.environ.get("OLLACORD_LOAD_SEED", "14"))
REDUCED_FORM = LoadConfig(questions=100, channels=20, members=10, seed=SEED, repeat=1)
FULL_FORM = LoadConfig(questions=500, channels=100, members=50, seed=SEED, repeat=3)


def check_report(report: LoadReport) -> None:
    print("\n".join(report.lines()))  # the seed and every figure, kept with -s or on failure
    config = report.config
    assert report.problems == []
    assert report.watch.unhandled == []
    assert len(report.summaries) == config.repeat
    for summary in report.summaries:
        assert summary.unserved == 0
        assert sum(summary.outcomes.values()) == config.questions
        # Every channel and every member had all its questions ended.
        share = config.questions // config.channels
        assert summary.served_per_channel == (share, share)
        share = config.questions // config.members
        assert summary.served_per_member == (share, share)
        # Both kinds of ending happened: the faults did bite, and most questions completed.
        assert summary.outcomes["warned"] > 0
        assert summary.outcomes["completes"] > config.questions // 2


async def test_load_reduced(tmp_path: Path) -> None:
    check_report(await run_load(REDUCED_FORM, tmp_path))


@pytest.mark.skipif(not FULL, reason="the full load run: OLLACORD_LOAD=full")
async def test_load_full(tmp_path: Path) -> None:
    report = await run_load(FULL_FORM, tmp_path)
    check_report(report)
    assert report.growth_mib is not None and report.growth_mib <= GROWTH_BOUND_MIB


# What the load run found ------------------------------------------------------------------
@contextlib.asynccontextmanager
async def database_write_lock(w: World) -> AsyncIterator[None]:
    """Another connection holds SQLite's write lock: the bot's writes wait (reads go on).
    Taken off the event loop: a write of the bot's under way needs the loop to finish."""
    path = make_url(w.settings.database_url).database
    assert path
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(connection.execute, "BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@pytest.mark.sqlite_only
async def test_an_answer_shown_in_full_no_longer_counts_against_the_member_cap(
    tmp_path: Path,
) -> None:
    # Under load the turn's write comes a while after the member saw the whole answer; a
    # question asked meanwhile was refused with "You already have 1 question waiting".
    async with world(tmp_path, MAX_QUEUED_PER_MEMBER="1") as w:
        answer = " ".join(f"word{i}" for i in range(30))
        w.ollama.set_reply(answer)
        w.ollama.tokens_per_second = 30
        first = await ask(w, "One")
        await first.wait_done(lambda r: r.original is not None and "word0" in r.original.content)
        async with database_write_lock(w):
            assert pages_without_footer(await finished(first)) == [answer]
            second = await ask(w, "Two")
            await second.wait_done(
                lambda r: (
                    bool(private_notes(r))
                    or (r.original is not None and "⏳" in r.original.content)
                )
            )
            assert private_notes(second) == []
        assert pages_without_footer(await finished(second)) == [answer]
        messages = await stored_messages(w, f"channel:{w.channel.id}", 4)
        check_turns(messages, answered=["One", "Two"])
