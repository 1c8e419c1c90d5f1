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
import math
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from . import ollama_answers as answers
from . import ollama_models as catalogue
from . import ollama_text
from .ollama_answers import NDJSON, ApiError, json_response, ndjson_line
from .ollama_faults import DROP, ERROR_MID, FAIL, STALL_BEFORE, STALL_MID, Fault, FaultBook
from .ollama_models import EmulatedModel, RecordedRequest

__all__ = ["EmulatedModel", "OllamaEmulator", "RecordedRequest"]

BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"
# A modern Ollama's OLLAMA_CONTEXT_LENGTH default: what a model runs with unless asked.
DEFAULT_NUM_CTX: Final = 4096
TRUNCATE: Final = "truncate"  # Ollama: drops the oldest part of the prompt, silently
REFUSE: Final = "refuse"  # llama.cpp's server: refuses the request
PULL_MISSING: Final = "pull model manifest: file does not exist"
# How far ahead /api/ps puts "never expires": Go's largest time.Duration, about 292 years.
_FOREVER: Final = timedelta(days=106_751)

_BODY: Final = web.RequestKey[dict[str, Any] | None]("body")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OllamaEmulator:
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
        self._reply: str | Callable[[dict[str, Any]], str] | None = None
        self._replies: deque[str] = deque()
        self._tool_calls: deque[list[dict[str, Any]]] = deque()
        self._thinking: str | None = None
        self._faults = FaultBook()
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
            app, handle_signals=False, access_log=None, shutdown_timeout=0.2
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

    # -- scripting ---------------------------------------------------------------------
    def set_reply(self, reply: str | Callable[[dict[str, Any]], str]) -> None:
        self._reply = reply

    def queue_replies(self, *replies: str) -> None:
        self._replies.extend(replies)

    def set_thinking(self, text: str) -> None:
        self._thinking = text

    def queue_tool_calls(self, calls: list[dict[str, Any]]) -> None:
        """The next chat request that offers tools gets these calls instead of text."""
        self._tool_calls.append([c if "function" in c else {"function": c} for c in calls])

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        error: str = "internal error",
        paths: tuple[str, ...] = ("/api/chat", "/api/generate"),
    ) -> None:
        self._faults.add(Fault(FAIL, count, paths, status=status, error=error))

    def stall_before_first_token(self, seconds: float, count: int = 1) -> None:
        self._faults.add(Fault(STALL_BEFORE, count, seconds=seconds))

    def stall_mid_stream(self, after_tokens: int, seconds: float, count: int = 1) -> None:
        self._faults.add(Fault(STALL_MID, count, seconds=seconds, after_tokens=after_tokens))

    def drop_mid_stream(self, after_tokens: int, count: int = 1) -> None:
        self._faults.add(Fault(DROP, count, after_tokens=after_tokens))

    def error_mid_stream(
        self,
        after_tokens: int,
        error: str = "model runner has unexpectedly stopped",
        count: int = 1,
    ) -> None:
        self._faults.add(Fault(ERROR_MID, count, error=error, after_tokens=after_tokens))

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return self._faults.pending

    # -- plumbing ----------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        body: dict[str, Any] | None = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(await request.read())
                body = parsed if isinstance(parsed, dict) else None
        request[_BODY] = body
        self.requests.append(
            RecordedRequest(
                request.method, request.path, body, time.monotonic(), dict(request.headers)
            )
        )
        if fault := self._faults.take(FAIL, request.path):
            return json_response({"error": fault.error}, fault.status)
        self._busy.add(request.protocol)
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response({"error": exc.message}, exc.status)
        finally:
            self._busy.discard(request.protocol)

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any]:
        body = request[_BODY]
        if body is None:
            raise ApiError(400, "missing request body")
        return body

    def _lookup(self, body: dict[str, Any]) -> tuple[str, EmulatedModel]:
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise ApiError(400, "model is required")
        model = self.models.get(ollama_text.normalize_name(name))
        if model is None:
            raise ApiError(404, f"model '{name}' not found")
        return name, model

    def _expire(self) -> None:
        now = time.monotonic()
        for name in [n for n, deadline in self.loaded.items() if deadline < now]:
            del self.loaded[name]

    async def _load(self, model: EmulatedModel) -> None:
        self._expire()
        async with self._load_lock:
            if model.name not in self.loaded:
                await asyncio.sleep(self.load_delay)
            self.loaded[model.name] = math.inf  # in use: it must not expire mid-answer

    def _release(self, model: EmulatedModel, keep_alive: float) -> None:
        if keep_alive == 0:
            self.loaded.pop(model.name, None)
        elif model.name in self.loaded:
            self.loaded[model.name] = time.monotonic() + keep_alive

    # -- catalogue endpoints -----------------------------------------------------------
    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.Response:
        return json_response({"version": self.version})

    def _installed_at(self, model: EmulatedModel) -> datetime:
        return self._installed.get(model.name, catalogue.INSTALLED_AT)

    async def _tags(self, request: web.Request) -> web.Response:
        return json_response(
            {"models": [catalogue.listing(m, self._installed_at(m)) for m in self.models.values()]}
        )

    async def _ps(self, request: web.Request) -> web.Response:
        self._expire()
        now_wall, now = datetime.now(UTC), time.monotonic()
        models = [
            catalogue.running(
                self.models.get(name) or EmulatedModel(name),
                now_wall + (_FOREVER if math.isinf(end) else timedelta(seconds=end - now)),
                self.loaded_num_ctx.get(name, self.default_num_ctx),
            )
            for name, end in self.loaded.items()
        ]
        return json_response({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        _, model = self._lookup(self._body(request))
        return json_response(catalogue.show(model, self._installed_at(model)))

    async def _delete(self, request: web.Request) -> web.Response:
        _, model = self._lookup(self._body(request))
        del self.models[model.name]
        self.loaded.pop(model.name, None)
        return web.Response()

    async def _copy(self, request: web.Request) -> web.Response:
        body = self._body(request)
        _, source = self._lookup({"model": body.get("source")})
        if not body.get("destination"):
            raise ApiError(400, "destination is required")
        self._install(replace(source, name=str(body["destination"])))
        return web.Response()

    def _install(self, model: EmulatedModel) -> None:
        if model.name not in self.models:
            self.models[model.name] = model
            self._installed[model.name] = datetime.now(UTC)

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise ApiError(400, "model is required")
        key = ollama_text.normalize_name(name)
        model = self.models.get(key) or self.pullable.get(key)
        if body.get("stream") is False:
            if model is None:
                raise ApiError(500, PULL_MISSING)
            self._install(model)
            return json_response({"status": "success"})
        resp = web.StreamResponse(headers={"Content-Type": NDJSON})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):  # a client that hangs up needs no answer
            await resp.write(ndjson_line({"status": "pulling manifest"}))
            if model is None:
                await resp.write(ndjson_line({"error": PULL_MISSING}))
                return resp
            for progress in catalogue.pull_progress(model):
                await resp.write(ndjson_line(progress))
                await asyncio.sleep(0)
            self._install(model)
            await resp.write(ndjson_line({"status": "success"}))
        return resp

    async def _embed(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = self._body(request)
        name, model = self._lookup(body)
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) and raw else raw if isinstance(raw, list) else []
        if not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "invalid input type")
        if not texts:
            return json_response({"model": name, "embeddings": []})
        counts = [ollama_text.approx_tokens(t) for t in texts]
        if body.get("truncate") is False and max(counts) > model.context_length:
            raise ApiError(400, "the input length exceeds the context length")
        await self._load(model)
        loaded = time.monotonic()
        self._release(model, ollama_text.parse_keep_alive(body.get("keep_alive")))
        dims = body.get("dimensions")
        size = dims if isinstance(dims, int) and 0 < dims < model.embedding_length else None
        return json_response(
            {
                "model": name,
                "embeddings": [
                    ollama_text.embedding(t, size or model.embedding_length) for t in texts
                ],
                "total_duration": max(int((time.monotonic() - started) * 1e9), 1),
                "load_duration": max(int((loaded - started) * 1e9), 1),
                "prompt_eval_count": sum(min(c, model.context_length) for c in counts),
            }
        )

    # -- chat and generate -------------------------------------------------------------
    def _script(self, body: dict[str, Any], chat: bool) -> tuple[str, list[dict[str, Any]] | None]:
        """Consume the scripted text or tool calls for this request."""
        if chat and body.get("tools") and self._tool_calls:
            return "", self._tool_calls.popleft()
        if self._replies:
            return self._replies.popleft(), None
        if callable(self._reply):
            return self._reply(body), None
        if self._reply is not None:
            return self._reply, None
        return f"Echo: {answers.last_user_text(body)}", None

    async def _complete(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        started = time.monotonic()
        body = self._body(request)
        name, model = self._lookup(body)
        thinking = answers.validate(body, name, model, chat)
        keep_alive = ollama_text.parse_keep_alive(body.get("keep_alive"))
        if not (body.get("messages") if chat else body.get("prompt") or body.get("images")):
            return await self._load_only(name, model, keep_alive, chat)
        if self._slots.locked() and self.queued >= self.max_queue:
            raise ApiError(503, BUSY)
        window = answers.context_window(body, model, self.default_num_ctx)
        prompt = self._fit(body, model, window)
        text, calls = self._script(body, chat)
        thoughts = self._thinking or f"Thinking about: {answers.last_user_text(body)}"
        answer = answers.plan(
            prompt,
            model,
            text=text,
            tool_calls=calls,
            thinking=thoughts if thinking else None,
            faults=self._faults.take_stream_faults(request.path),
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
            answer.loaded = time.monotonic()
            send = answers.send_whole if body.get("stream") is False else answers.send_stream
            return await send(request, name, answer, chat, lambda: self.tokens_per_second)
        finally:
            self.active_streams -= 1
            self._release(model, keep_alive)
            self._slots.release()

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
