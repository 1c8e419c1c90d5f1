"""BenchStore: the kept benchmark runs (``/model bench``), to show a run beside earlier ones.

As the other stores: one database operation per method, each in its own session (a write
in its own transaction, serialised in-process since SQLite admits one writer), and database
failures become StorageError.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select

from bot.core.runner.kept import KeptBench
from bot.storage.models import BenchRun, utcnow
from bot.storage.operations import Store

log = logging.getLogger(__name__)


def _kept(row: BenchRun) -> KeptBench:
    return KeptBench(
        row.id, row.scope, row.model, row.requested_by, row.created_at, dict(row.results)
    )


class BenchStore(Store):
    async def add(
        self, scope: str, model: str, results: dict[str, Any], *, requested_by: int | None
    ) -> KeptBench:
        row = BenchRun(
            scope=scope,
            model=model,
            requested_by=requested_by,
            results=results,
            created_at=utcnow(),
        )
        async with self._writing() as db:
            db.add(row)
            await db.flush()  # gives the row its id before the session closes
            kept = _kept(row)
        log.debug("kept bench run %d of %s in %s", kept.id, model, scope)
        return kept

    async def of_model(
        self, scope: str, model: str, *, limit: int, before: int | None = None
    ) -> list[KeptBench]:
        """The model's runs in ``scope``, newest first (only those older than run ``before``
        when given)."""
        query = select(BenchRun).where(BenchRun.scope == scope, BenchRun.model == model)
        if before is not None:
            query = query.where(BenchRun.id < before)
        query = query.order_by(BenchRun.id.desc()).limit(limit)
        async with self._reading() as db:
            return [_kept(row) for row in (await db.scalars(query)).all()]

    async def latest_per_model(self, scope: str, *, limit: int) -> list[KeptBench]:
        """Each model's newest run in ``scope``, the most recently benchmarked model first."""
        newest = (
            select(func.max(BenchRun.id).label("id"))
            .where(BenchRun.scope == scope)
            .group_by(BenchRun.model)
            .subquery()
        )
        query = (
            select(BenchRun)
            .join(newest, newest.c.id == BenchRun.id)
            .order_by(BenchRun.id.desc())
            .limit(limit)
        )
        async with self._reading() as db:
            return [_kept(row) for row in (await db.scalars(query)).all()]
