"""The Ollama hosts of ``bench.scaling``: one OllamaEmulator per child process, so that a host
can be SIGKILLed mid-run like a server that crashed, and asked over a pipe which chat
requests it received (what the bot sent as a conversation's history).

Each host answers a question with a text naming itself and the question
(``reply_text``), so the Discord side can tell who answered and check the text exactly.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import re
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

START_TIMEOUT = 60.0  # seconds for a spawned host to import the emulator and listen
CALL_TIMEOUT = 30.0  # seconds a host may take to answer a command over its pipe
STOP_TIMEOUT = 10.0
QUESTION = re.compile(r"\bq\d+\b")
LENGTH = re.compile(r"\((\d+) words\)")  # a prompt asking for a longer answer than usual


def reply_text(host: str, prompt: str, tokens: int) -> str:
    """What ``host`` answers to ``prompt``: ``tokens`` emulator tokens (``\\s*\\S+`` each;
    "(N words)" in the prompt: N), so that it takes ``tokens / tokens_per_second`` s."""
    match = QUESTION.search(prompt)
    if length := LENGTH.search(prompt):
        tokens = int(length.group(1))
    head = [host, "answers", match.group(0) if match else "?"]
    filler = [f"w{i}" for i in range(max(0, tokens - len(head)))]
    return " ".join([*head, *filler])


@dataclass(frozen=True)
class ChatSeen:
    """One /api/chat request a host received: its messages as (role, content)."""

    messages: tuple[tuple[str, str], ...]

    @property
    def question(self) -> str:
        users = [content for role, content in self.messages if role == "user"]
        return users[-1] if users else ""


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def _serve(conn: Connection, name: str, tokens: int, options: dict[str, Any]) -> None:
    from tests.emulators.ollama_server import OllamaEmulator

    async def main() -> None:
        emu = OllamaEmulator(**options)
        emu.set_reply(lambda body: reply_text(name, _last_user_text(body), tokens))
        await emu.start()
        conn.send(emu.url)
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    command = await loop.run_in_executor(None, conn.recv)
                except EOFError:  # the parent died: stop all the same
                    return
                if command == "chats":
                    conn.send([_seen(r.json) for r in emu.requests if r.path == "/api/chat"])
                elif command == "stats":
                    conn.send({"max_active": emu.max_active_seen, "chats": _chats(emu)})
                else:
                    return
        finally:
            await emu.stop()

    asyncio.run(main())


def _chats(emu: Any) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/chat")


def _seen(body: dict[str, Any] | None) -> ChatSeen:
    messages = (body or {}).get("messages") or []
    return ChatSeen(tuple((str(m.get("role")), str(m.get("content") or "")) for m in messages))


class HostProcess:
    """An Ollama emulator named ``name`` (A, B…) in a child process of its own."""

    def __init__(self, name: str, tokens: int, **options: Any) -> None:
        self.name = name
        self.url = ""
        self._tokens = tokens
        self.options = options
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._lock = asyncio.Lock()
        self.killed = False

    def start(self) -> str:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(child, self.name, self._tokens, self.options), daemon=True
        )
        process.start()
        child.close()
        self._conn, self._process = parent, process
        if not parent.poll(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"Ollama host {self.name} did not start")
        self.url = parent.recv()
        return self.url

    def spec(self, capacity: int) -> str:
        """Its entry in OLLAMA_HOSTS."""
        return f"{self.url}*{capacity}"

    def kill(self) -> None:
        """SIGKILL: the server dies at once, its connections cut mid-answer."""
        assert self._process is not None
        self._process.kill()
        self._process.join(STOP_TIMEOUT)
        self.killed = True

    async def chats(self) -> list[ChatSeen]:
        """Every chat request it received (none once killed: what it saw died with it)."""
        return await self._call("chats") if not self.killed else []

    async def stats(self) -> dict[str, int]:
        return await self._call("stats") if not self.killed else {"max_active": 0, "chats": 0}

    async def _call(self, command: str) -> Any:
        assert self._conn is not None
        conn = self._conn
        async with self._lock:  # one question at a time on the pipe
            conn.send(command)
            ready = await asyncio.to_thread(conn.poll, CALL_TIMEOUT)
            if not ready:
                raise RuntimeError(f"Ollama host {self.name} did not answer {command!r}")
            return conn.recv()

    def stop(self) -> None:
        if self._conn is not None:
            with suppress(BrokenPipeError, OSError):
                self._conn.send("stop")
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(STOP_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(STOP_TIMEOUT)
            self._process = None
