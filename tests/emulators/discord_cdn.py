"""The CDN: serves attachment bytes at their signed links and records every fetch, so a
test can tell whether (and how far) the bot downloaded a file.

Paths, as on Discord: ``/attachments/{channel_id}/{attachment_id}/{filename}`` and
``/ephemeral-attachments/{application_id}/{attachment_id}/{filename}``, each also under
``/media`` (the ``proxy_url`` host). A link whose signature is missing, wrong or expired,
or that names no stored attachment, gets Discord's 404 "This content is no longer
available.". Per-attachment misbehaviour comes from ``Attachment.cdn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiohttp import web

from .discord_attachments import PROXY_PREFIX, Attachment, link_is_valid
from .discord_world import World

_GONE = "This content is no longer available."
# A trickled body is written in slices this far apart.
_TRICKLE_TICK = 0.05


@dataclass
class CdnFetch:
    """One GET on the CDN. ``attachment_id`` is None when the path named none we know."""

    at: float  # time.monotonic() when the request arrived
    path: str
    via: str  # "url" or "proxy_url"
    attachment_id: int | None
    status: int = 0  # 0 until the response starts
    bytes_sent: int = 0
    complete: bool = False  # the whole body was handed to the client
    finished_at: float | None = None


class Cdn:
    def __init__(self, world: World) -> None:
        self.world = world
        self.fetches: list[CdnFetch] = []
        # Set on shutdown so that delayed or trickling responses end at once instead of
        # holding the server's cleanup for its whole grace period.
        self._closing = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("", PROXY_PREFIX):
            for kind in ("attachments", "ephemeral-attachments"):
                app.router.add_get(
                    f"{prefix}/{kind}/{{folder}}/{{attachment_id}}/{{filename}}", self.handle
                )

    def close(self) -> None:
        self._closing.set()

    @property
    def downloads(self) -> int:
        """Fetches answered 200."""
        return sum(1 for f in self.fetches if f.status == 200)

    def fetches_of(self, attachment: Attachment | int) -> list[CdnFetch]:
        aid = attachment if isinstance(attachment, int) else attachment.id
        return [f for f in self.fetches if f.attachment_id == aid]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        proxied = request.path.startswith(PROXY_PREFIX + "/")
        canonical = request.path[len(PROXY_PREFIX) :] if proxied else request.path
        att = self._lookup(request.match_info["attachment_id"])
        rec = CdnFetch(
            at=time.monotonic(),
            path=request.path_qs,
            via="proxy_url" if proxied else "url",
            attachment_id=att.id if att is not None else None,
        )
        self.fetches.append(rec)
        self.world.notifier.notify()
        try:
            if att is None or att.path != canonical or not link_is_valid(att.path, request.query):
                return self._answer(rec, web.Response(status=404, text=_GONE))
            behaviour = att.cdn
            if behaviour.delay > 0:
                await self._pause(behaviour.delay)
            if self._closing.is_set():
                return self._answer(rec, web.Response(status=503, text="shutting down"))
            if behaviour.status is not None and behaviour.status != 200:
                return self._answer(rec, web.Response(status=behaviour.status, text="error"))
            body = att.data if behaviour.body is None else behaviour.body
            # Exactly what Discord declared (possibly with a charset), not aiohttp's idea.
            headers = {"Content-Type": att.content_type or "application/octet-stream"}
            if behaviour.bytes_per_second is None:
                rec.bytes_sent, rec.complete = len(body), True
                return self._answer(rec, web.Response(body=body, headers=headers))
            return await self._trickle(request, rec, body, headers, behaviour.bytes_per_second)
        finally:
            rec.finished_at = time.monotonic()
            self.world.notifier.notify()

    def _lookup(self, raw_id: str) -> Attachment | None:
        try:
            return self.world.attachments.get(int(raw_id))
        except ValueError:
            return None

    @staticmethod
    def _answer(rec: CdnFetch, response: web.Response) -> web.Response:
        rec.status = response.status
        return response

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _trickle(
        self,
        request: web.Request,
        rec: CdnFetch,
        body: bytes,
        headers: dict[str, str],
        rate: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = len(body)
        # A body cut short by shutdown must not leave a keep-alive connection half-read.
        response.force_close()
        await response.prepare(request)
        rec.status = 200
        step = max(1, int(rate * _TRICKLE_TICK))
        try:
            for start in range(0, len(body), step):
                if start:
                    await self._pause(_TRICKLE_TICK)
                if self._closing.is_set():
                    return response
                chunk = body[start : start + step]
                await response.write(chunk)
                rec.bytes_sent += len(chunk)
                self.world.notifier.notify()
            await response.write_eof()
            rec.complete = True
        except ConnectionError:
            pass  # the client gave up (a timeout in the bot): the record says how far it got
        return response
