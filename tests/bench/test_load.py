"""bench.load's parts: the seeded schedule, the watch for unhandled exceptions, memory.
(The run itself is tests/chaos/test_load.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from bench import load_plan
from bench.load_checks import Watch, memory

log = logging.getLogger(__name__)


def test_the_schedule_is_replayed_by_its_seed_and_shares_questions_out_evenly() -> None:
    sizes = {"questions": 100, "channels": 20, "members": 10}
    plan = load_plan.schedule(**sizes, seed=7)
    assert plan == load_plan.schedule(**sizes, seed=7)
    assert plan != load_plan.schedule(**sizes, seed=8)
    assert plan != load_plan.schedule(**sizes, seed=7, repetition=1)
    assert set(Counter(q.channel for q in plan).values()) == {5}
    assert set(Counter(q.member for q in plan).values()) == {10}
    assert len({q.tag for q in plan}) == 100
    assert all(load_plan.TAG.search(q.prompt).group(0) == q.tag for q in plan)  # type: ignore[union-attr]
    assert all(q.tag in q.reply for q in plan)
    # Faults of every kind come up in 500 questions, and long answers past a page.
    big = load_plan.schedule(questions=500, channels=100, members=50, seed=7)
    assert {q.fault for q in big} == set(load_plan.WEIGHTS)
    assert any(len(q.reply) > 2000 for q in big)
    assert "[load-0-0003] channel" in load_plan.describe(plan)


async def test_the_watch_sees_what_nobody_handled() -> None:
    watch = Watch()
    watch.install(asyncio.get_running_loop())
    try:

        async def fails() -> None:
            raise RuntimeError("lost")

        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0.01)
        del task  # its exception never retrieved
        try:
            raise ValueError("logged")
        except ValueError:
            log.exception("handled badly")
        log.error("no traceback")
    finally:
        watch.uninstall()
    assert any("lost" in line for line in watch.loop_errors)
    assert any("handled badly" in line for line in watch.tracebacks)
    assert watch.error_logs == [f"{__name__}: no traceback"]
    assert len(watch.unhandled) == 2


def test_memory_reads_this_process() -> None:
    now = memory()
    assert 0 < now.rss_kib <= now.peak_kib
