"""An in-process emulator of the Ollama HTTP API, for tests.

It speaks the wire format of a real server (docs/api.md and api/types.go in ollama/ollama)
closely enough that the official `ollama` client cannot tell the difference, and adds hooks
to script the answers and to inject the failures a bot must survive: refused connections,
HTTP errors, stalls, dropped connections and errors in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from . import ollama_answers as answers
from . import ollama_images as images
from . import ollama_models as catalogue
from . import ollama_schema as schema
from . import ollama_text
from .ollama_answers import ApiError, json_response
from .ollama_endpoints import BODY, PULL_MISSING, ModelEndpoints
from .ollama_faults import FAIL, RUNNER_FAIL
from .ollama_models import EmulatedModel, RecordedRequest
from .ollama_script import Reply, Scripting
from .ollama_tools import ToolCall, ToolScript, offered_names, raw_output

__all__ = [
    "PULL_MISSING",
    "EmulatedModel",
    "OllamaEmulator",
    "RecordedRequest",
    "ToolCall",
    "ToolScript",
]

BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"
# A modern Ollama's OLLAMA_CONTEXT_LENGTH default: what a model runs with unless asked.
DEFAULT_NUM_CTX: Final = 4096
TRUNCATE: Final = "truncate"  # Ollama: drops the oldest part of the prompt, silently
REFUSE: Final = "refuse"  # llama.cpp's server: refuses the request
_RECORD: Final = web.RequestKey[RecordedRequest]("record")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OllamaEmulator(Scripting, ModelEndpoints):
    """The server: lifecycle, plumbing, chat and generate. The scripting API (replies, tool
    scripts, faults) is in Scripting, the model endpoints in ModelEndpoints."""

    def __init__(
        self,
        models: Sequence[EmulatedModel] | None = None,
        *,
        tokens_per_second: float | None = None,
        load_delay: float = 0.0,
        pullable: Mapping[str, EmulatedModel] | None = None,
        num_parallel: int = 4,
        max_queue: int = 512,
        version: str = "0.12.6",
        port: int = 0,
        default_num_ctx: int = DEFAULT_NUM_CTX,
        context_overflow: str = TRUNCATE,
    ) -> None:
        super().__init__()
        chosen = catalogue.default_models() if models is None else models
        self.models: dict[str, EmulatedModel] = {m.name: m for m in chosen}
        self.pullable = {
            ollama_text.normalize_name(k): replace(m, name=k) for k, m in (pullable or {}).items()
        }
        self.tokens_per_second = tokens_per_second
        self.load_delay = load_delay
        self.num_parallel = num_parallel  # informational: the slots are fixed at start
        self.max_queue = max_queue
        self.version = version
        self.default_num_ctx = default_num_ctx
        if context_overflow not in (TRUNCATE, REFUSE):
            raise ValueError(f"context_overflow must be {TRUNCATE!r} or {REFUSE!r}")
        self.context_overflow = context_overflow
        # (prompt tokens, window) of every chat/generate prompt that did not fit its window.
        self.truncations: list[tuple[int, int]] = []
        self.requests: list[RecordedRequest] = []
        self.active_streams = 0
        self.max_active_seen = 0
        self.queued = 0  # chat/generate requests waiting for one of the num_parallel slots
        # loaded model name -> time.monotonic() after which it counts as unloaded
        self.loaded: dict[str, float] = {}
        self.loaded_num_ctx: dict[str, int] = {}  # loaded model name -> its window
        self.url = ""
        self._port = port
        self._installed: dict[str, datetime] = {}
        self._slots = asyncio.Semaphore(num_parallel)
        self._load_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._busy: set[RequestHandler[web.Request]] = set()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        for method, path, handler in (
            ("GET", "/", self._root),
            ("HEAD", "/", self._root),
            ("GET", "/api/version", self._version),
            ("GET", "/api/tags", self._tags),
            ("GET", "/api/ps", self._ps),
            ("POST", "/api/show", self._show),
            ("POST", "/api/pull", self._pull),
            ("DELETE", "/api/delete", self._delete),
            ("POST", "/api/copy", self._copy),
            ("POST", "/api/embed", self._embed),
            ("POST", "/api/chat", functools.partial(self._complete, chat=True)),
            ("POST", "/api/generate", functools.partial(self._complete, chat=False)),
        ):
            app.router.add_route(method, path, handler)
        # A short grace on stop: a test that ends during a stall must not wait it out.
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=0.2,
            # As Ollama: a request whose client went away ends, freeing its slot.
            handler_cancellation=True,
        )
        await self._runner.setup()
        await self.accept_connections()
        assert self._server is not None
        self._port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OllamaEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def refuse_connections(self) -> None:
        """Stop listening, as if Ollama had exited; answers already under way still finish."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is None or self._runner.server is None:
            return
        # Idle keep-alive connections must go too, or a pooled client would reuse one and
        # never see the refusal; busy ones close once their answer is complete.
        for connection in self._runner.server.connections:
            if connection in self._busy:
                connection.close()
                continue
            if connection.transport is not None:
                # The FIN must leave now: transport.close() acts on the next loop iteration,
                # after the client may already have picked this connection from its pool.
                with contextlib.suppress(OSError):
                    connection.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            connection.force_close()

    async def accept_connections(self) -> None:
        """Listen again, on the same port as before."""
        if self._server is not None or self._runner is None or self._runner.server is None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._runner.server, "127.0.0.1", self._port, reuse_address=True
        )

    # -- plumbing ----------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        body: dict[str, Any] | None = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(await request.read())
                body = parsed if isinstance(parsed, dict) else None
        request[BODY] = body
        record = RecordedRequest(
            request.method, request.path, body, time.monotonic(), dict(request.headers)
        )
        request[_RECORD] = record
        self.requests.append(record)
        if fault := self._faults.take(FAIL, request.path, answers.last_user_text(body or {})):
            return json_response({"error": fault.error}, fault.status)
        self._busy.add(request.protocol)
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response({"error": exc.message}, exc.status)
        finally:
            self._busy.discard(request.protocol)

    # -- chat and generate -------------------------------------------------------------
    async def _complete(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        started = time.monotonic()
        body = self._body(request)
        request[_RECORD].images = answers.bind(body, chat)
        name, model = self._lookup(body)
        keep_alive = ollama_text.parse_keep_alive(body.get("keep_alive"))
        empty = not (body.get("messages") if chat else body.get("prompt"))
        if empty and keep_alive == 0:  # unloading comes before any capability check
            return await self._load_only(name, model, keep_alive, chat)
        thinking = answers.validate(body, name, model, chat)
        if empty:
            return await self._load_only(name, model, keep_alive, chat)
        if self._slots.locked() and self.queued >= self.max_queue:
            raise ApiError(503, BUSY)
        window = answers.context_window(body, model, self.default_num_ctx)
        prompt = self._fit(body, model, window)
        seen = images.decode_request(prompt, chat)  # those still in the window
        # A request the runner will refuse takes no script: no model ever answers it.
        said = answers.last_user_text(body)
        failure = self._runner_failure(body, model, seen)
        if failure is None and (crash := self._faults.take(RUNNER_FAIL, request.path, said)):
            failure = crash.error
        answer = None
        if failure is None:
            reply = self._decide(body, model.name, chat, self._echo(body, model, len(seen)))
            thoughts = self._thinking or f"Thinking about: {said}"
            answer = answers.plan(
                prompt,
                model,
                text=self._raw_text(body, model, reply),
                tools=offered_names(body) if chat and body.get("tools") else None,
                thinking=thoughts if thinking else None,
                faults=self._faults.take_stream_faults(request.path, said),
                started=started,
                window=window,
            )
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.active_streams += 1
        self.max_active_seen = max(self.max_active_seen, self.active_streams)
        try:
            await self._load(model)
            self.loaded_num_ctx[model.name] = window
            if failure or answer is None:
                raise ApiError(500, failure or "unexpected response")
            answer.loaded = time.monotonic()
            send = answers.send_whole if body.get("stream") is False else answers.send_stream
            return await send(request, name, answer, chat, lambda: self.tokens_per_second)
        finally:
            self.active_streams -= 1
            self._release(model, keep_alive)
            self._slots.release()

    @staticmethod
    def _echo(body: dict[str, Any], model: EmulatedModel, seen: int) -> str:
        """The default answer; a vision model also says how many images it saw."""
        text = f"Echo: {answers.last_user_text(body)}"
        if seen and "vision" in model.capabilities:
            text += f" [{seen} image{'s' if seen > 1 else ''}]"
        return text

    def _raw_text(self, body: dict[str, Any], model: EmulatedModel, reply: Reply) -> str:
        """What the model writes: its tool calls in its template's style, or the text,
        shaped by `format` (and broken on purpose if a violation is pending)."""
        if reply.calls:
            return raw_output(reply.calls, model.tool_call_tag)
        fmt = body.get("format")
        if fmt in (None, "") or schema.format_error(fmt):
            return reply.text
        return schema.reply(reply.text, fmt, self._take_violation(body))

    @staticmethod
    def _runner_failure(
        body: dict[str, Any], model: EmulatedModel, seen: list[bytes]
    ) -> str | None:
        """What fails once the model is loaded, in Completion() or in the runner: a 500
        before anything is streamed (streamResponse then answers plain JSON)."""
        if error := schema.format_error(body.get("format")):
            return error
        try:
            refuse = model.images_without_vision == catalogue.REFUSE
            images.check_seen(seen, "vision" in model.capabilities, refuse)
        except images.ImageError as exc:
            return str(exc)
        return None

    def _fit(self, body: dict[str, Any], model: EmulatedModel, window: int) -> dict[str, Any]:
        """The prompt the model gets: truncated to its window, or refused (llama.cpp)."""
        tokens = answers.prompt_tokens(body, model)
        if tokens <= window:
            return body
        if self.context_overflow == REFUSE:
            # llama.cpp's words; a 500, since its server has no better status for it.
            raise ApiError(500, f"Requested tokens ({tokens}) exceed context window of {window}")
        self.truncations.append((tokens, window))
        return answers.truncate(body, model, window)

    async def _load_only(
        self, name: str, model: EmulatedModel, keep_alive: float, chat: bool
    ) -> web.Response:
        """An empty prompt only loads (or with keep_alive 0, unloads) the model."""
        if keep_alive != 0:
            await self._load(model)
        self._release(model, keep_alive)
        text = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
        reason = "unload" if keep_alive == 0 else "load"
        head = {"model": name, "created_at": ollama_text.now_rfc3339()}
        return json_response({**head, **text, "done": True, "done_reason": reason})
