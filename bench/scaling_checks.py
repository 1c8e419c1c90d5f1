"""What ``bench.scaling`` checks in PostgreSQL (by SQL, as an admin would) and how a phase's
checks are kept: each one passes or fails with a line saying what was seen."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

POLL_INTERVAL = 0.05  # seconds between two looks at the database (a query takes ~1 ms)


@dataclass
class Checks:
    """The checks of one phase, in the order they ran."""

    phase: str
    results: list[tuple[bool, str]] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> bool:
        self.results.append((ok, what))
        return ok

    @property
    def failed(self) -> list[str]:
        return [what for ok, what in self.results if not ok]

    def lines(self) -> list[str]:
        return [f"  {'ok  ' if ok else 'FAIL'} {what}" for ok, what in self.results]


class Database:
    """Plain SQL on the bot's database, on one asyncpg connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None
        self._lock = asyncio.Lock()  # one query at a time on the connection

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        import asyncpg

        async with self._lock:
            if self._connection is None:
                parsed = make_url(self.url)
                self._connection = await asyncpg.connect(
                    host=parsed.host,
                    port=parsed.port,
                    user=parsed.username,
                    password=parsed.password,
                    database=parsed.database,
                )
            return [tuple(r) for r in await self._connection.fetch(sql, *args)]

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def turns(self, contents: Sequence[str], role: str) -> Counter[str]:
        """How many stored messages of ``role`` have each of ``contents`` (0 if none)."""
        rows = await self.rows(
            "SELECT content, count(*) FROM messages WHERE role = $1 AND content = ANY($2::text[]) "
            "GROUP BY content",
            role,
            list(contents),
        )
        counts: Counter[str] = Counter({c: 0 for c in contents})
        counts.update({content: int(n) for content, n in rows})
        return counts

    async def history(self, session_id: str) -> list[tuple[str, str]]:
        """A conversation's stored messages, (role, content), oldest first."""
        rows = await self.rows(
            "SELECT role, content FROM messages WHERE session_id = $1 ORDER BY id", session_id
        )
        return [(str(role), str(content)) for role, content in rows]

    async def live_replies(self, reply_ids: Iterable[int]) -> set[int]:
        """Which of these replies (their first message's id) are recorded as being written:
        what the next start ends after a crash."""
        rows = await self.rows(
            "SELECT id FROM live_replies WHERE id = ANY($1::bigint[])", list(reply_ids)
        )
        return {int(row[0]) for row in rows}

    async def stored(
        self,
        contents: Sequence[str],
        role: str,
        timeout: float,  # noqa: ASYNC109
    ) -> Counter[str]:
        """``turns``, once each of ``contents`` is stored or ``timeout`` s passed: the bot
        shows an answer as soon as it is complete and stores the turn meanwhile."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            counts = await self.turns(contents, role)
            if all(counts.values()) or asyncio.get_running_loop().time() > deadline:
                return counts
            await asyncio.sleep(POLL_INTERVAL)


def exactly_once(counts: Counter[str]) -> tuple[int, list[str]]:
    """(how many are stored exactly once, a description of the others)."""
    once = sum(1 for n in counts.values() if n == 1)
    others = [f"{text[:40]!r} x{n}" for text, n in counts.items() if n != 1]
    return once, others
