"""Keeps large indexes' inverted lists made, in the background (see ``clusters``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.core.knowledge.index import VectorIndex

log = logging.getLogger(__name__)


class ListMaker:
    """One task per server at most, making lists in a worker thread while searches go on
    with the exact scan. ``current(scope)`` is the index a server uses now: a replaced one
    (a new embedding model, a re-embedding) is not worked on."""

    def __init__(self, current: Callable[[str], VectorIndex | None]) -> None:
        self._current = current
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def keep(self, scope: str, index: VectorIndex) -> None:
        """Make lists for ``index`` if it needs them, unless that is under way."""
        if index.needs_clustering() and scope not in self._tasks:
            self._tasks[scope] = asyncio.create_task(
                self._make(scope, index), name=f"kb-lists-{scope}"
            )

    async def wait(self, scope: str) -> None:
        """Until the server's lists are made (or the attempt failed)."""
        task = self._tasks.get(scope)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _make(self, scope: str, index: VectorIndex) -> None:
        try:
            # Again while the rows change during the work (documents added meanwhile).
            while index.needs_clustering() and self._current(scope) is index:
                started = time.perf_counter()
                done = await asyncio.to_thread(index.clustering())
                if index.adopt(done):
                    lists, took = len(done.clusters.centroids), time.perf_counter() - started
                    log.info("%s: %d vectors in %d lists (%.1f s)", scope, len(index), lists, took)
        except Exception:  # searches go on with the exact scan
            log.exception("%s: could not group the knowledge base's vectors", scope)
        finally:
            self._tasks.pop(scope, None)
