"""Run the Ollama emulator in a child process, so benchmarks measure only our own CPU time."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any


def _serve(conn: Connection, reply: str | None, options: dict[str, Any]) -> None:
    from tests.emulators.ollama_server import OllamaEmulator

    async def main() -> None:
        emu = OllamaEmulator(**options)
        if reply is not None:
            emu.set_reply(reply)
        await emu.start()
        conn.send(emu.url)
        loop = asyncio.get_running_loop()
        # Block in a thread until the parent says stop (or dies and closes the pipe).
        await loop.run_in_executor(None, _wait_for_stop, conn)
        await emu.stop()

    asyncio.run(main())


def _wait_for_stop(conn: Connection) -> None:
    with suppress(EOFError):  # the parent died: stop all the same
        conn.recv()


@contextmanager
def ollama_emulator_process(reply: str | None = None, **options: Any) -> Iterator[str]:
    """Yield the URL of an emulator running in another process; stop it on exit.

    ``reply`` is the answer to every chat; ``options`` go to OllamaEmulator().
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, reply, options), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the emulator process did not start")
        yield parent.recv()
    finally:
        with suppress(BrokenPipeError, OSError):
            parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()
