"""How much the request manager costs on top of the raw ollama.AsyncClient.

Streams the same long answer from the Ollama emulator (in another process) through the raw
client and through ``OllamaRequestManager.query(stream=True)``, alternating, and prints the
median CPU time per answer of each, their ratio, and the time-to-first-chunk difference.

    .venv/bin/python -m bench.manager_overhead [--tokens 2000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import ollama

from bench.emulator_process import ollama_emulator_process
from bot import OllamaRequestManager

MODEL = "llama3.2"
PROMPT = "Tell me a long story."


async def measure(
    stream_factory: Callable[[], Awaitable[AsyncIterator[str]]],
) -> tuple[float, float, int]:
    """CPU seconds for one whole answer, wall seconds to its first chunk, characters."""
    gc.collect()  # every measurement starts from the same heap, not the last one's garbage
    cpu0, wall0 = time.process_time(), time.perf_counter()
    first = None
    size = 0
    async for chunk in await stream_factory():
        if first is None:
            first = time.perf_counter() - wall0
        size += len(chunk)
    return time.process_time() - cpu0, first or 0.0, size


async def run(tokens: int, rounds: int) -> float:
    """Print the end-to-end table; return the raw client's median CPU seconds per answer."""
    answer = " ".join(f"token{i}" for i in range(tokens))
    with ollama_emulator_process(reply=answer) as url, tempfile.TemporaryDirectory() as tmp:
        raw = ollama.AsyncClient(host=url, timeout=httpx.Timeout(60, connect=10))
        manager = OllamaRequestManager(
            host=url, default_model=MODEL, database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"
        )
        await manager.start()

        async def raw_stream() -> AsyncIterator[str]:
            async def gen() -> AsyncIterator[str]:
                async for part in await raw.chat(
                    model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
                ):
                    yield part.message.content or ""

            return gen()

        async def managed_stream() -> AsyncIterator[str]:
            return await manager.query(prompt=PROMPT, stream=True)

        async def session_stream() -> AsyncIterator[str]:
            await manager.create_session("bench")  # keep the history from growing
            return await manager.query(prompt=PROMPT, stream=True, session_id="bench")

        kinds = {
            "raw client": raw_stream,
            "query()": managed_stream,
            "query(session)": session_stream,
        }
        results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in kinds}
        for factory in kinds.values():  # warm-up: imports, connection pool, model load
            await measure(factory)
        order = list(kinds.items())
        for _ in range(rounds):
            random.shuffle(order)  # no path always runs first (after the pause) or last
            for name, factory in order:
                results[name].append(await measure(factory))
        await manager.close()
        await raw.close()

    print(f"answer: {tokens} tokens, {len(answer)} characters; {rounds} rounds, medians")
    raw_rows = results["raw client"]
    base_cpu = statistics.median(r[0] for r in raw_rows)
    base_first = statistics.median(r[1] for r in raw_rows)
    print(
        f"{'path':<16}{'CPU ms/answer':>15}{'CPU ratio':>11}{'per-round ratio (IQR)':>24}"
        f"{'first chunk ms':>16}{'delta ms':>10}"
    )
    for name, rows in results.items():
        assert all(r[2] == len(answer) for r in rows), f"{name} lost characters"
        cpu = statistics.median(r[0] for r in rows)
        first = statistics.median(r[1] for r in rows)
        # Each round's own ratio cancels slow drifts of the machine (other load, clocks).
        q1, mid, q3 = statistics.quantiles(
            [r[0] / b[0] for r, b in zip(rows, raw_rows, strict=True)], n=4
        )
        print(
            f"{name:<16}{cpu * 1000:>15.2f}{cpu / base_cpu:>11.3f}"
            f"{f'{mid:.3f} ({q1:.3f}-{q3:.3f})':>24}"
            f"{first * 1000:>16.2f}{(first - base_first) * 1000:>10.2f}"
        )
    return base_cpu


class _CannedChat:
    """Stands in for the library's HTTP transport: hands out pre-built ChatResponse parts."""

    def __init__(self, parts: list[ollama.ChatResponse]) -> None:
        self.parts = parts

    async def close(self) -> None:
        pass

    async def show(self, model: str) -> ollama.ShowResponse:
        # The manager asks for the model's context length before its first question.
        return ollama.ShowResponse(model_info={"general.architecture": "llama"})

    async def chat(self, **_: object) -> AsyncIterator[ollama.ChatResponse]:
        async def stream() -> AsyncIterator[ollama.ChatResponse]:
            for part in self.parts:
                yield part

        return stream()


async def in_process(chunks: int, repeats: int) -> tuple[float, float]:
    """Per-chunk CPU µs of (raw iteration, query()) over the same parts, without HTTP.

    HTTP and JSON dominate the end-to-end figures and make them noisy on a shared machine;
    this isolates what the manager itself adds per chunk.
    """
    parts = [
        ollama.ChatResponse(model=MODEL, message={"role": "assistant", "content": f"t{i} "})
        for i in range(chunks)
    ]
    parts.append(
        ollama.ChatResponse(
            model=MODEL, message={"role": "assistant", "content": ""}, done=True, eval_count=chunks
        )
    )
    canned = _CannedChat(parts)
    with tempfile.TemporaryDirectory() as tmp:
        manager = OllamaRequestManager(database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'c.db'}")
        await manager.start()
        manager.client._client = canned  # type: ignore[assignment]  # bench-only transport swap

        async def raw() -> None:
            async for part in await canned.chat():
                _ = part.message.content or ""

        async def managed() -> None:
            async for _ in await manager.query(prompt=PROMPT, stream=True):
                pass

        timings: dict[str, list[float]] = {"raw": [], "managed": []}
        for _ in range(repeats):
            for name, run_once in (("raw", raw), ("managed", managed)):
                gc.collect()
                start = time.process_time()
                await run_once()
                timings[name].append((time.process_time() - start) / chunks * 1e6)
        await manager.close()
    return statistics.median(timings["raw"]), statistics.median(timings["managed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    raw_cpu = asyncio.run(run(args.tokens, args.rounds))
    raw_us, managed_us = asyncio.run(in_process(100_000, 7))
    added = managed_us - raw_us
    print(
        f"in process, no HTTP (100,000 chunks, median of 7): raw iteration {raw_us:.3f} µs/chunk,"
        f" through query() {managed_us:.3f} µs/chunk: the manager adds {added:.3f} µs/chunk"
    )
    per_chunk = raw_cpu / args.tokens * 1e6
    print(
        f"the raw client spends {per_chunk:.1f} µs of CPU per chunk over HTTP, so the manager's"
        f" share is {added / per_chunk:.2%}: CPU ratio {1 + added / per_chunk:.3f} (target < 1.02)"
    )


if __name__ == "__main__":
    main()
