"""What models the server has: a TTL-cached list, pulls with progress, health."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.core.errors import InvalidRequestError, OllamaError
from bot.core.ollama_client import OllamaClient, normalize_model_name
from bot.core.types import HealthStatus, ModelDetails, ModelInfo, PullProgress

log = logging.getLogger(__name__)

MODELS_CACHE_TTL = 30.0
# A query waits this long at most for /api/show before going ahead without its details.
SHOW_TIMEOUT = 10.0
MAX_MODEL_NAME_LENGTH = 200


class ModelCatalog:
    def __init__(self, client: OllamaClient, ttl: float = MODELS_CACHE_TTL) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: list[ModelInfo] | None = None
        self._fetched_at = 0.0
        self._details: dict[str, tuple[float, ModelDetails]] = {}
        self._showing: dict[str, asyncio.Future[ModelDetails]] = {}

    async def list(self, force_refresh: bool = False) -> list[ModelInfo]:
        fresh = time.monotonic() - self._fetched_at < self._ttl
        if self._cache is None or force_refresh or not fresh:
            self._cache = await self._client.list_models()
            self._fetched_at = time.monotonic()
        return list(self._cache)

    def invalidate(self) -> None:
        self._cache = None
        self._details.clear()

    async def details(self, name: str) -> ModelDetails | None:
        """The model's /api/show details, cached; None when they can't be had."""
        key = normalize_model_name(name)
        cached = self._details.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        # One /api/show for everyone asking at once (fifty questions arriving together).
        pending = self._showing.get(key)
        if pending is None:
            pending = self._showing[key] = asyncio.ensure_future(self._client.show(name))
            pending.add_done_callback(lambda _: self._showing.pop(key, None))
        try:
            found = await asyncio.wait_for(asyncio.shield(pending), SHOW_TIMEOUT)
        except (OllamaError, TimeoutError) as exc:
            log.debug("no details for %s: %r", name, exc)
            return None
        self._details[key] = (time.monotonic(), found)
        return found

    async def capabilities(self, name: str) -> tuple[str, ...]:
        """What a model can do ("thinking", "tools", ...); empty when it can't be told."""
        found = await self.details(name)
        return found.capabilities if found is not None else ()

    async def context_length(self, name: str) -> int | None:
        """The longest context the model was trained for (not what Ollama runs it with)."""
        found = await self.details(name)
        return found.context_length if found is not None else None

    async def is_available(self, name: str) -> bool:
        wanted = normalize_model_name(name)
        return any(normalize_model_name(m.name) == wanted for m in await self.list())

    async def pull(self, name: str, progress: Callable[[PullProgress], Any] | None = None) -> bool:
        """Download a model; True once the server reports success."""
        name = name.strip()
        if not name or len(name) > MAX_MODEL_NAME_LENGTH or any(c.isspace() for c in name):
            raise InvalidRequestError(f"{name!r} is not a valid model name.")
        succeeded = False
        try:
            async for update in self._client.pull(name):
                succeeded = update.status == "success"
                if progress is not None:
                    result = progress(update)
                    if inspect.isawaitable(result):
                        await result
        finally:
            self.invalidate()
        log.info("pull of %s finished (success=%s)", name, succeeded)
        return succeeded

    async def health(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            version = await self._client.version()
        except OllamaError as exc:
            return HealthStatus(ok=False, latency_ms=None, error=exc.user_message)
        return HealthStatus(
            ok=True, latency_ms=(time.perf_counter() - started) * 1000, version=version
        )
