"""LiveReplies: the replies being written, remembered in the database at little cost.

A crash (SIGKILL, power loss, the OOM killer) leaves the reply it interrupted with a cursor
and a Stop button that no longer works. So each reply is recorded once its first message
exists and forgotten once it is final, and the next start ends what is still recorded
(``bot.discord_app.unfinished_replies``).

Cheap, because answers stream on the hot path: nothing is written before the first message
is shown, and changes wait ``FLUSH_DELAY`` and then go to the database in one transaction
for every reply, outside the replies' own writes. A reply that ends within that time costs
no write at all; a hundred replies streaming at once cost one small transaction per
``FLUSH_DELAY``. The price: a crash within ``FLUSH_DELAY`` of a reply's first message
leaves that reply as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.core.errors import StorageError
from bot.storage.live_replies import LiveReplyRecord, LiveReplyStore

log = logging.getLogger(__name__)

FLUSH_DELAY = 1.0


class LiveReplies:
    def __init__(self, store: LiveReplyStore, *, delay: float = FLUSH_DELAY) -> None:
        self.store = store
        self._delay = delay
        # reply id -> its latest record, or None: delete it. Only the last change counts.
        self._pending: dict[int, LiveReplyRecord | None] = {}
        self._stored: set[int] = set()  # ids this process wrote (or is writing)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_later(), name="live-replies")

    def shown(self, record: LiveReplyRecord) -> None:
        """The reply shows these messages now (called when one is created)."""
        self._pending[record.id] = record
        self._wake.set()

    def settled(self, reply_id: int) -> None:
        """Every message of the reply is final: forget it."""
        if reply_id in self._stored:
            self._pending[reply_id] = None
            self._wake.set()
        else:
            self._pending.pop(reply_id, None)  # never written: nothing to undo

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        save = [record for record in pending.values() if record is not None]
        forget = [reply_id for reply_id, record in pending.items() if record is None]
        # Marked before the write: a reply that settles meanwhile must delete its row.
        self._stored.update(record.id for record in save)
        try:
            await self.store.apply(save, forget)
        except StorageError:
            # Tried again at the next flush, unless something newer replaced them meanwhile.
            for reply_id, record in pending.items():
                self._pending.setdefault(reply_id, record)
            return
        self._stored.difference_update(forget)

    async def _flush_later(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._delay)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        """Write what is pending now (the replies still unfinished stay recorded)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
