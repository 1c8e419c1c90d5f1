"""The pool of Ollama hosts: a question's slot on a host (``lease``), moved to another host
when it fails there before its first token; hosts picked for embeddings and model calls;
the breakers' probes; and, with several hosts, what each has and has loaded kept fresh.

With one host (OLLAMA_HOST, or OLLAMA_HOSTS with one entry) the pool asks nothing of its
own: no lists, no /api/ps, no probes; every question goes to it, as it always did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from bot.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OllamaConnectionLostError,
    OllamaError,
    OllamaTimeoutError,
    OllamaUnavailableError,
)
from bot.core.hosts import routing
from bot.core.hosts.breaker import CircuitBreaker
from bot.core.hosts.host import Host, HostReport
from bot.core.hosts.spec import HostSpec
from bot.core.ollama_client import OllamaClient, normalize_model_name
from bot.core.queueing import Claim, PositionCallback, SlotQueue
from bot.core.types import ModelInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often, with several hosts, each host in rotation is asked what it has loaded.
REFRESH_INTERVAL = 10.0
# A probe, or a refresh of a host's lists: a host that does not answer within this is down.
CALL_TIMEOUT = 5.0
# What says the server is gone, rather than busy or failing one request: these open breakers.
CONNECTION_FAILURES = (OllamaUnavailableError, OllamaTimeoutError, OllamaConnectionLostError)


class Lease:
    """A question's slot on a host. ``bot.core.generation`` asks through ``client``, says
    when the first token came (``started``) and when an attempt failed (``failed``), which
    may move the question to another host."""

    def __init__(
        self,
        pool: HostPool,
        host: Host,
        models: Sequence[str],
        on_position: PositionCallback | None,
    ) -> None:
        self._pool = pool
        self.host = host
        self.models = tuple(models)
        self._on_position = on_position
        self.tried: set[Host] = {host}
        self.moves = 0
        self._held = True

    @property
    def client(self) -> OllamaClient:
        return self.host.client

    def started(self, model: str) -> None:
        """The first token came: the host answers, and has the model loaded now."""
        self._pool.succeeded(self.host)
        if self._pool.several:
            self.host.loaded.add(normalize_model_name(model))

    async def failed(self, exc: OllamaError, model: str, delivered: bool) -> bool:
        """An attempt on this host failed. True when the question moved to another host, to
        be asked again there at once; False: it stays (retried here, or given up). After text
        was ``delivered`` only a failure of the host itself moves it (the host went away
        mid-answer): the answer starts again there, and the reply replaces what it showed."""
        pool = self._pool
        pool.failed(self.host, exc, model)
        if not pool.several:
            return False
        if not (exc.retryable or isinstance(exc, ModelNotFoundError)):
            return False  # the request itself is at fault: another host would refuse it too
        if delivered and not exc.retryable:
            return False
        self.tried.add(self.host)
        if not routing.alternatives(pool.hosts, self.models, self.tried):
            return False
        left = self.host
        self.release()
        self.host = await pool.slot(self.models, self._on_position, self.tried, first=True)
        self._held = True
        self.tried.add(self.host)
        self.moves += 1
        log.info(
            "question moved from %s to %s after: %s",
            left.label,
            self.host.label,
            exc.user_message,
        )
        return True

    def answered(self) -> None:
        self.host.answers += 1
        self._pool.after_answer(self.host)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool.slots.release(self.host)


class HostPool:
    def __init__(
        self,
        hosts: Sequence[Host],
        *,
        slots: SlotQueue[Host] | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        models_ttl: float = 30.0,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        if not hosts:
            raise ValueError("a pool needs at least one host")
        self.hosts = tuple(hosts)
        self.several = len(self.hosts) > 1
        self.slots: SlotQueue[Host] = slots if slots is not None else SlotQueue()
        self.slots.gates.extend(self.hosts)
        self._refresh_interval = refresh_interval
        self._models_ttl = models_ttl
        self._call_timeout = call_timeout
        self._tasks: dict[object, asyncio.Task[None]] = {}

    @classmethod
    def open(
        cls,
        specs: Sequence[HostSpec],
        *,
        default_capacity: int,
        timeout: float,
        slots: SlotQueue[Host] | None = None,
        breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
        **options: float,
    ) -> HostPool:
        """A pool of new clients, one per configured host (``close()`` closes them)."""
        hosts = []
        for spec in specs:
            capacity = spec.capacity or default_capacity
            client = OllamaClient(spec.url, timeout=timeout, max_streams=capacity)
            hosts.append(Host(spec, client, capacity, breaker()))
        return cls(hosts, slots=slots, **options)

    @classmethod
    def around(cls, client: OllamaClient, capacity: int = 1) -> HostPool:
        """A one-host pool around a client someone else owns (and closes)."""
        return cls([Host(HostSpec(client.host), client, capacity, CircuitBreaker())])

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """With several hosts: read what each has and has loaded, then keep it fresh."""
        if not self.several:
            return
        await asyncio.gather(*(self._refresh(h, models=True) for h in self.hosts))
        self._spawn("upkeep", self._upkeep())

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for host in self.hosts:
            await host.client.close()

    # questions -----------------------------------------------------------------------------
    def reserve(self) -> Claim[Host]:
        """A question's place in the one FIFO of all hosts, taken when its turn comes and
        before it is planned; ``lease`` it, or ``withdraw`` it if planning fails."""
        return self.slots.reserve()

    def withdraw(self, claim: Claim[Host]) -> None:
        self.slots.withdraw(claim)

    async def lease(
        self,
        models: Sequence[str],
        on_position: PositionCallback | None = None,
        claim: Claim[Host] | None = None,
    ) -> Lease:
        """A slot for a question on ``models`` (the chain: chosen model, then fallbacks), at
        the place of its ``claim`` (else the end of the queue); ``release()`` it when done."""
        host = await self.slot(models, on_position, claim=claim)
        return Lease(self, host, models, on_position)

    async def slot(
        self,
        models: Sequence[str],
        on_position: PositionCallback | None,
        exclude: set[Host] | None = None,
        *,
        claim: Claim[Host] | None = None,
        first: bool = False,
    ) -> Host:
        if not self.several:
            only = self.hosts
            return await self.slots.acquire(lambda: only, _first, on_position, claim=claim)
        hosts = self.hosts

        def eligible() -> list[Host]:
            if exclude:
                return routing.eligible(hosts, models, exclude) or routing.eligible(hosts, models)
            return routing.eligible(hosts, models)

        def choose(free: Sequence[Host]) -> Host:
            return routing.best(free, routing.placement(hosts, models)[0])

        return await self.slots.acquire(eligible, choose, on_position, claim=claim, first=first)

    def pick(self, models: Sequence[str], exclude: set[Host] | None = None) -> Host:
        """The best host for a call that takes no slot (an embedding, a model's details)."""
        if not self.several:
            return self.hosts[0]
        hosts = routing.eligible(self.hosts, models, exclude or ())
        hosts = hosts or routing.eligible(self.hosts, models)
        return routing.best(hosts, routing.placement(self.hosts, models)[0])

    def alternative(self, models: Sequence[str], tried: set[Host]) -> Host | None:
        """Where a call that failed on the ``tried`` hosts may go next (None: nowhere)."""
        if not self.several or not routing.alternatives(self.hosts, models, tried):
            return None
        return self.pick(models, tried)

    def find(self, label: str) -> Host:
        """The host of that label (its URL without credentials, as /model pull offers it)."""
        for host in self.hosts:
            if host.label == label.rstrip("/"):
                return host
        raise InvalidRequestError(f"There is no Ollama host {label!r} in the configuration.")

    # the hosts' state ----------------------------------------------------------------------
    def failed(self, host: Host, exc: OllamaError, model: str | None) -> None:
        if exc.retryable:
            host.errors += 1
        if isinstance(exc, ModelNotFoundError) and model is not None and self.several:
            host.forget(model)
        if isinstance(exc, CONNECTION_FAILURES) and host.breaker.record_failure():
            # With one host there is no rotation to leave: it is only reported down.
            log.warning(
                "%s does not answer (%d failures in a row: %s)%s",
                host.label,
                host.breaker.failures,
                exc.user_message,
                "; out of rotation until it does" if self.several else "",
            )
            if self.several:
                self._spawn(("probe", host), self._probe(host))
            self.slots.dispatch()

    def succeeded(self, host: Host) -> None:
        if host.breaker.record_success():
            log.info("%s answers again", host.label)
            self.slots.dispatch()

    async def call(
        self, host: Host, call: Callable[[OllamaClient], Awaitable[T]], model: str | None = None
    ) -> T:
        """One call to a host, its outcome told to the host's breaker."""
        try:
            result = await call(host.client)
        except OllamaError as exc:
            self.failed(host, exc, model)
            raise
        self.succeeded(host)
        return result

    async def list_models(self, host: Host, ttl: float, force: bool = False) -> list[ModelInfo]:
        if force or not host.list_is_fresh(ttl):
            host.listed(await self.call(host, lambda c: c.list_models()))
        assert host.listing is not None
        return list(host.listing)

    def after_answer(self, host: Host) -> None:
        """Ask the host what it has loaded now (answering may have pushed another model out)."""
        if self.several and ("refresh", host) not in self._tasks:
            self._spawn(("refresh", host), self._refresh(host, models=False))

    def reports(self) -> list[HostReport]:
        return [h.report(self.slots.waiting_for(h)) for h in self.hosts]

    # in the background ---------------------------------------------------------------------
    def _spawn(self, key: object, work: Coroutine[Any, Any, None]) -> None:
        if key in self._tasks:
            work.close()
            return
        task = asyncio.create_task(work)
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _refresh(self, host: Host, *, models: bool) -> None:
        try:
            async with asyncio.timeout(self._call_timeout):
                if models or not host.list_is_fresh(self._models_ttl):
                    host.listed(await host.client.list_models())
                host.loaded = set(await host.client.running())
        except TimeoutError:
            self.failed(host, OllamaTimeoutError(f"{host.label} did not answer."), None)
        except OllamaError as exc:
            log.debug("refreshing %s failed: %s", host.label, exc.user_message)
            self.failed(host, exc, None)
        else:
            self.succeeded(host)

    async def _upkeep(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            up = [h for h in self.hosts if h.up]
            await asyncio.gather(*(self._refresh(h, models=False) for h in up))

    async def _probe(self, host: Host) -> None:
        """Ask an out-of-rotation host for its version, backing off, until it answers."""
        while host.breaker.is_open:
            await asyncio.sleep(host.breaker.cooldown)
            try:
                async with asyncio.timeout(self._call_timeout):
                    await host.client.version()
            except (OllamaError, TimeoutError) as exc:
                host.breaker.probe_failed()
                log.debug(
                    "%s still down (%r); next probe in %.0f s",
                    host.label,
                    exc,
                    host.breaker.cooldown,
                )
                continue
            self.succeeded(host)
        await self._refresh(host, models=True)


def _first(free: Sequence[Host]) -> Host:
    return free[0]
