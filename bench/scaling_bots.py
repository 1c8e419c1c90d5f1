"""The bot processes of ``bench.scaling``: real ``python -m bot`` processes, one per shard,
each with its log drained into a file (an undrained pipe would block the bot once full)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0  # seconds to import, open the database and connect, on a busy machine
STOP_TIMEOUT = 60.0  # SIGTERM: answers in flight finish first
READY = "connected as"


class BotProcess:
    """One ``python -m bot`` serving ``shard`` of ``count``, its log kept in ``log_path``."""

    def __init__(self, shard: int, count: int, env: Mapping[str, str], workdir: Path) -> None:
        self.shard = shard
        self.shard_count = count
        self.env = dict(env)
        self.workdir = workdir
        self.lines: list[str] = []
        self.starts = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def log_path(self) -> Path:
        return self.workdir / f"shard{self.shard}.log"

    async def start(self) -> None:
        """Start the process; returns once it logged that it is connected."""
        self.starts += 1
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            **self.env,
            "SHARD_COUNT": str(self.shard_count),
            "SHARD_IDS": str(self.shard),
        }
        # Its own working directory: the bot reads .env there, and the repository's must
        # not change the settings under test.
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        first = len(self.lines)
        self._reader = asyncio.create_task(self._drain(self.proc, f"--- start {self.starts}\n"))
        await self.wait_log(READY, since=first, timeout=START_TIMEOUT)

    async def _drain(self, proc: asyncio.subprocess.Process, banner: str) -> None:
        assert proc.stderr is not None
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(banner)
            while raw := await proc.stderr.readline():
                line = raw.decode(errors="replace")
                self.lines.append(line)
                out.write(line)
                out.flush()
                self._changed.set()
        self._changed.set()

    async def wait_log(self, needle: str, *, since: int = 0, timeout: float) -> str:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[since:]:
                    if needle in line:
                        return line
                if self._reader is None or self._reader.done():
                    raise RuntimeError(
                        f"shard {self.shard}'s process exited before logging {needle!r}; "
                        f"its log: {self.log_path}"
                    )
                self._changed.clear()
                await self._changed.wait()

    def count(self, needle: str) -> int:
        return sum(1 for line in self.lines if needle in line)

    def grep(self, *needles: str) -> list[str]:
        return [line.rstrip() for line in self.lines if any(n in line for n in needles)]

    async def stop(self) -> int:
        """SIGTERM and wait: the answers in flight finish, then it exits."""
        return await self._end(signal.SIGTERM, STOP_TIMEOUT)

    async def kill(self) -> int:
        """SIGKILL: a crash, nothing finishes."""
        return await self._end(signal.SIGKILL, STOP_TIMEOUT)

    async def _end(self, sig: signal.Signals, timeout: float) -> int:  # noqa: ASYNC109
        proc, reader = self.proc, self._reader
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        if reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, STOP_TIMEOUT)
        self.proc = self._reader = None
        return code


class Cluster:
    """The bot: one process per shard, all on one database and the same Ollama hosts."""

    def __init__(self, base_env: Mapping[str, str], workdir: Path, shards: int = 2) -> None:
        self.base_env = dict(base_env)
        self.workdir = workdir
        self.shards = shards
        self.bots: list[BotProcess] = []

    async def start(self, label: str, **env: str) -> None:
        """Every shard's process, started at once, with ``env`` on top of the base settings
        (those of an earlier start are stopped first: two processes must not share a shard)."""
        await self.stop()
        directory = self.workdir / label
        self.bots = [
            BotProcess(k, self.shards, {**self.base_env, **env}, directory)
            for k in range(self.shards)
        ]
        results = await asyncio.gather(*(b.start() for b in self.bots), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> list[int]:
        codes = await asyncio.gather(*(b.stop() for b in self.bots))
        return list(codes)

    def count(self, needle: str) -> int:
        return sum(b.count(needle) for b in self.bots)

    def grep(self, *needles: str) -> list[str]:
        return [f"shard {b.shard}: {line}" for b in self.bots for line in b.grep(*needles)]
