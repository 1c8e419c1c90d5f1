"""What models the servers have: a TTL-cached list (the union of the hosts', with the hosts
that have each model), details from a host that has the model, pulls with progress, health."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.core.errors import InvalidRequestError, OllamaError, OllamaServerError
from bot.core.hosts.host import Host
from bot.core.hosts.pool import HostPool
from bot.core.ollama_client import OllamaClient, normalize_model_name
from bot.core.types import HealthStatus, ModelDetails, ModelInfo, PullProgress

log = logging.getLogger(__name__)

MODELS_CACHE_TTL = 30.0
# A query waits this long at most for /api/show before going ahead without its details.
SHOW_TIMEOUT = 10.0
MAX_MODEL_NAME_LENGTH = 200
# With several hosts, each one's health check gets this long: under /healthz's 2 s, so one
# host that does not answer cannot hide the others' state.
HOST_HEALTH_TIMEOUT = 1.5

UNFINISHED = "the pull ended before the server reported success"

ProgressCallback = Callable[[PullProgress], Any]


@dataclass(frozen=True, slots=True)
class HostedModel:
    """A model, and the hosts that have it (their URLs without credentials)."""

    info: ModelInfo
    hosts: tuple[str, ...]


class ModelCatalog:
    def __init__(self, hosts: HostPool, ttl: float = MODELS_CACHE_TTL) -> None:
        self._pool = hosts
        self._ttl = ttl
        self._details: dict[str, tuple[float, ModelDetails]] = {}
        self._showing: dict[str, asyncio.Future[ModelDetails]] = {}

    async def list(self, force_refresh: bool = False) -> list[ModelInfo]:
        return [m.info for m in await self.hosted(force_refresh)]

    async def hosted(self, force_refresh: bool = False) -> list[HostedModel]:
        """Every model of every host in rotation, in the order the hosts list them. Raises
        only when no host could be read (the first host's error)."""
        pool = self._pool
        hosts = [h for h in pool.hosts if h.up] or list(pool.hosts)
        listed = await asyncio.gather(
            *(pool.list_models(h, self._ttl, force_refresh) for h in hosts),
            return_exceptions=True,
        )
        found: dict[str, tuple[ModelInfo, list[str]]] = {}
        errors: list[BaseException] = []
        for host, models in zip(hosts, listed, strict=True):
            if isinstance(models, BaseException):
                if not isinstance(models, OllamaError):
                    raise models
                log.debug("cannot list the models of %s: %s", host.label, models.user_message)
                errors.append(models)
                continue
            for model in models:
                entry = found.setdefault(normalize_model_name(model.name), (model, []))
                entry[1].append(host.label)
        if errors and len(errors) == len(hosts):
            raise errors[0]
        return [HostedModel(info, tuple(labels)) for info, labels in found.values()]

    def invalidate(self) -> None:
        for host in self._pool.hosts:
            host.listing = None
        self._details.clear()

    async def show(self, name: str) -> ModelDetails:
        """The model's /api/show, from a host that has it."""
        host = self._pool.pick((name,))
        return await self._pool.call(host, lambda c: c.show(name), name)

    async def details(self, name: str) -> ModelDetails | None:
        """The model's /api/show details, cached; None when they can't be had."""
        key = normalize_model_name(name)
        cached = self._details.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        # One /api/show for everyone asking at once (fifty questions arriving together).
        pending = self._showing.get(key)
        if pending is None:
            pending = self._showing[key] = asyncio.ensure_future(self.show(name))
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

    async def pull(
        self, name: str, progress: ProgressCallback | None = None, host: str | None = None
    ) -> bool:
        """Download a model to ``host`` (a label) or to every host, one after the other;
        True once each reports success. With several hosts, each update's status starts
        with the host's label; a host that fails does not stop the others, and is named."""
        name = name.strip()
        if not name or len(name) > MAX_MODEL_NAME_LENGTH or any(c.isspace() for c in name):
            raise InvalidRequestError(f"{name!r} is not a valid model name.")
        targets = [self._pool.find(host)] if host is not None else list(self._pool.hosts)
        if len(targets) == 1:
            return await self._pull_on(targets[0], name, progress, labelled=False)
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        for target in targets:
            try:
                if await self._pull_on(target, name, progress, labelled=True):
                    done.append(target.label)
                else:
                    failed.append((target.label, UNFINISHED))
            except OllamaError as exc:
                failed.append((target.label, exc.user_message))
        if not failed:
            return True
        where = "; ".join(f"{label}: {why}" for label, why in failed)
        if done:
            raise OllamaServerError(f"`{name}` is ready on {', '.join(done)}, but not on {where}")
        if all(why == UNFINISHED for _, why in failed):
            return False  # as with one host: the pull ended without success
        raise OllamaServerError(f"The pull of `{name}` failed on {where}")

    async def _pull_on(
        self, host: Host, name: str, progress: ProgressCallback | None, *, labelled: bool
    ) -> bool:
        succeeded = False

        async def each(client: OllamaClient) -> None:
            nonlocal succeeded
            async for update in client.pull(name):
                succeeded = update.status == "success"
                if progress is None:
                    continue
                if labelled:
                    update = PullProgress(
                        f"{host.label}: {update.status}", update.completed, update.total
                    )
                result = progress(update)
                if inspect.isawaitable(result):
                    await result

        try:
            await self._pool.call(host, each, name)
        finally:
            self.invalidate()
        if succeeded and self._pool.several:
            # Routing must know at once that the host has it now.
            await self._pool.list_models(host, self._ttl, force=True)
        log.info("pull of %s on %s finished (success=%s)", name, host.label, succeeded)
        return succeeded

    async def health(self) -> HealthStatus:
        """The server's health; with several hosts, healthy when one is (each host's own
        result is kept on it, for the per-host reports)."""
        pool = self._pool
        if not pool.several:
            return await self.check(pool.hosts[0])
        checks = await asyncio.gather(*(self.check(h, HOST_HEALTH_TIMEOUT) for h in pool.hosts))
        up = [c for c in checks if c.ok]
        down = [
            f"{h.label}: {c.error}" for h, c in zip(pool.hosts, checks, strict=True) if not c.ok
        ]
        error = f"{len(down)} of {len(checks)} hosts down ({'; '.join(down)})" if down else None
        if not up:
            return HealthStatus(ok=False, latency_ms=None, error=error)
        fastest = min(up, key=lambda c: c.latency_ms or 0.0)
        return HealthStatus(
            ok=True, latency_ms=fastest.latency_ms, version=fastest.version, error=error
        )

    async def check(self, host: Host, within: float | None = None) -> HealthStatus:
        """One host's version and latency; the result is kept as ``host.health``."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(within):
                version = await self._pool.call(host, lambda c: c.version())
        except TimeoutError:
            status = HealthStatus(ok=False, latency_ms=None, error=f"no answer within {within:g} s")
        except OllamaError as exc:
            status = HealthStatus(ok=False, latency_ms=None, error=exc.user_message)
        else:
            latency = (time.perf_counter() - started) * 1000
            status = HealthStatus(ok=True, latency_ms=latency, version=version)
        host.health = status
        return status
