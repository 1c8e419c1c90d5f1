"""QueryStream: the handle of a streamed answer, and the one way its end is told.

Iterating it yields the answer's text. ``completed`` is a future that gets the result as
soon as the model's final chunk has arrived (or the answer was stopped, with what was said):
a reply can show the answer complete at once, while the core still winds the connection
down and stores the turn, which is when the iteration ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from bot.core.types import OllamaQueryResult


class QueryStream(AsyncIterator[str]):
    """The text chunks of a streamed answer; ``result`` once it is complete (or stopped).

    Consume it fully, or ``aclose()`` it (``async with`` does) to cancel the generation.
    """

    def __init__(self) -> None:
        self._source: AsyncGenerator[str, None] | None = None
        self.completed: asyncio.Future[OllamaQueryResult] = (
            asyncio.get_running_loop().create_future()
        )
        self.stop_requested = False

    @property
    def result(self) -> OllamaQueryResult | None:
        """The answer once complete (or stopped); None before, or if it failed."""
        completed = self.completed
        return completed.result() if completed.done() else None

    def complete(self, result: OllamaQueryResult) -> None:
        """The core says the answer is complete (or stopped); later calls change nothing."""
        if not self.completed.done():
            self.completed.set_result(result)

    def request_stop(self) -> None:
        """Mark the coming cancellation as the user's choice: what was said is then kept."""
        self.stop_requested = True

    def bind(self, source: AsyncGenerator[str, None]) -> None:
        self._source = source

    async def collect(self) -> OllamaQueryResult:
        """Run the query to its end (the turn stored) and return its result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    def __aiter__(self) -> AsyncIterator[str]:
        # Hand out the generator itself: `async for` then skips a Python-level hop per chunk.
        assert self._source is not None
        return self._source

    async def __anext__(self) -> str:
        assert self._source is not None
        return await anext(self._source)

    async def aclose(self) -> None:
        if self._source is not None:
            await self._source.aclose()

    async def __aenter__(self) -> QueryStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
