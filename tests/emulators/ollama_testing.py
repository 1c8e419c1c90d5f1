"""Helpers for the Ollama emulator's own tests: draining streams, waiting for a state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


async def collect(stream: AsyncIterator[T]) -> tuple[list[T], BaseException | None]:
    """Everything a stream yields, and the exception that ended it, if any."""
    items: list[T] = []
    try:
        async for item in stream:
            items.append(item)
    except Exception as exc:
        return items, exc
    return items, None


async def collect_or_raise(stream: AsyncIterator[T]) -> list[T]:
    return [item async for item in stream]


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
