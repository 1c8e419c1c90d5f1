"""Embeddings through the request manager: batched ``/api/embed`` calls with the chat's
timeouts, retries and statistics, and the model that made each vector.

Vectors are L2-normalised float32 rows, so a dot product is their cosine similarity. There is
no fallback model: vectors of two models cannot be compared, so a missing embedding model is
reported (ModelNotFoundError) rather than replaced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OllamaError,
    OllamaTimeoutError,
)
from bot.core.generation import GenerationLimits, backoff_delay
from bot.core.hosts.host import Host
from bot.core.hosts.pool import HostPool
from bot.core.ollama_client import OllamaClient
from bot.core.stats import RequestStats

log = logging.getLogger(__name__)

# Texts per /api/embed call: large enough to amortise the round trip, small enough that one
# call stays well inside the timeout on a CPU-only server.
EMBED_BATCH = 32
# Embedding calls at once: ingestion of a large file must leave room for chat answers.
EMBED_CONCURRENCY = 2
MAX_EMBED_CHARS = 1_000_000  # in one embed() call, all texts together
VECTOR_DTYPE = np.float32


@dataclass(frozen=True, slots=True)
class Embeddings:
    """``vectors[i]`` embeds the i-th text; ``model`` made them all."""

    model: str
    vectors: np.ndarray  # shape (n, dims), float32, rows of unit length

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.size else 0


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as stored: float32, little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(VECTOR_DTYPE, copy=False)


def normalized(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (rows / norms).astype(VECTOR_DTYPE, copy=False)


class Embedder:
    """Embeddings on the Ollama hosts: each batch goes where routing sends a question on the
    embedding model (a host in rotation that has it, warm first), and moves to another host
    when it fails there, before any backoff. Embeddings take no host's slot: they have
    their own small cap, and leave the slots to chat answers."""

    def __init__(
        self,
        hosts: HostPool | OllamaClient,  # a client: that one server
        stats: RequestStats,
        model: str,
        limits: GenerationLimits,
        *,
        batch_size: int = EMBED_BATCH,
        concurrency: int = EMBED_CONCURRENCY,
    ) -> None:
        self._hosts = hosts if isinstance(hosts, HostPool) else HostPool.around(hosts)
        self._stats = stats
        self.model = model
        self._limits = limits
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> Embeddings:
        """Embed ``texts`` (in batches, in order) with ``model`` (default EMBEDDING_MODEL)."""
        name = model or self.model
        items = list(texts)
        if sum(len(t) for t in items) > MAX_EMBED_CHARS:
            raise InvalidRequestError("Too much text to embed in one request.")
        if not items:
            return Embeddings(name, np.zeros((0, 0), dtype=VECTOR_DTYPE))
        batches = [items[i : i + self._batch_size] for i in range(0, len(items), self._batch_size)]
        tasks = [asyncio.create_task(self._batch(name, batch)) for batch in batches]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            # The caller has its error: the batches not done would only retry, in the
            # background, and hold the slots the next call waits for.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return Embeddings(name, normalized(np.vstack(parts)))

    async def _batch(self, model: str, texts: list[str]) -> np.ndarray:
        """One /api/embed call, retried like a chat request that has shown nothing yet."""
        retries = 0
        pool, models = self._hosts, (model,)
        async with self._slots:
            host = pool.pick(models)
            tried: set[Host] = {host}
            while True:
                started = time.monotonic()
                try:
                    vectors = await asyncio.wait_for(
                        host.client.embed(model, texts), self._limits.timeout
                    )
                except TimeoutError as exc:
                    error: OllamaError = OllamaTimeoutError(
                        f"Embedding took longer than {self._limits.timeout:g} s."
                    )
                    error.__cause__ = exc
                except OllamaError as exc:
                    error = exc
                else:
                    pool.succeeded(host)
                    self._stats.record_embedding(model, len(texts), time.monotonic() - started)
                    return np.asarray(vectors, dtype=VECTOR_DTYPE)
                pool.failed(host, error, model)
                if error.retryable or isinstance(error, ModelNotFoundError):
                    moved = pool.alternative(models, tried)
                    if moved is not None:
                        log.info(
                            "embedding moved from %s to %s: %s", host.label, moved.label, error
                        )
                        host = moved
                        tried.add(host)
                        self._stats.host_switches += 1
                        continue
                if not error.retryable or retries >= self._limits.max_retries:
                    self._stats.record_failure(error, time.monotonic() - started, model)
                    raise error
                delay = backoff_delay(retries, self._limits.retry_backoff)
                retries += 1
                self._stats.retries += 1
                log.info("embedding retry %d for %s in %.2fs: %s", retries, model, delay, error)
                await asyncio.sleep(delay)
