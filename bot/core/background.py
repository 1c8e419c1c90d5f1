"""Stopping background work without cutting a database operation in half.

A task cancelled while SQLAlchemy waits on aiosqlite (or asyncpg) leaves the connection's
rollback cancelled too, and the pool logs "Exception during reset" with a traceback at every
shutdown that happens to land there. So work that reads and writes the database is first
asked to stop at its next step and given a moment to get there; only then is it cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

# How long a background task may take to reach a safe point when the bot stops: a batch
# of database reads and writes, not a model call (those are cancelled after it).
STOP_GRACE = 2.0


async def stop_tasks(tasks: Collection[asyncio.Task[None]], grace: float = STOP_GRACE) -> None:
    """Wait up to ``grace`` seconds for ``tasks`` (told to stop beforehand) to end, then
    cancel those still running; returns once all have ended. Their errors are not raised:
    the caller is closing, and each task logs its own."""
    if not tasks:
        return
    _, running = await asyncio.wait(tasks, timeout=grace)
    for task in running:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
