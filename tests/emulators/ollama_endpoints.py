"""The Ollama emulator's model endpoints and the model state they share with generation.

/, /api/version, /api/tags, /api/ps, /api/show, /api/delete, /api/copy, /api/pull and
/api/embed, plus the helpers every handler uses (the body, the model lookup, loading and
unloading). OllamaEmulator inherits this; the attributes below are set in its __init__.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from . import ollama_answers as answers
from . import ollama_models as catalogue
from . import ollama_text
from .ollama_answers import NDJSON, ApiError, json_response, ndjson_line
from .ollama_faults import DROP, FaultBook
from .ollama_models import EmulatedModel

PULL_MISSING: Final = "pull model manifest: file does not exist"
EMBED_TOO_LONG: Final = "input exceeds maximum context length"
EMBED_SPECIAL_TOKENS: Final = 2  # the BOS and EOS a truncated input loses room to
# Architectures llm/server.go runs on Ollama's own engine (fs/ggml OllamaEngineRequired at
# v0.12.6). That runner refuses /embedding for a model without pooling, a chat model, with
# a 501 the server passes on as a 500; llama.cpp's runner embeds with any model.
OLLAMA_ENGINE_FAMILIES: Final = frozenset(
    {"gemma3", "gemma3n", "mistral3", "qwen3", "qwen3moe", "llama4", "mllama", "qwen25vl"}
    | {"gptoss", "gpt-oss"}
)
NO_EMBEDDINGS: Final = "this model does not support embeddings"
# How far ahead /api/ps puts "never expires": Go's largest time.Duration, about 292 years.
_FOREVER: Final = timedelta(days=106_751)

BODY: Final = web.RequestKey[dict[str, Any] | None]("body")


class ModelEndpoints:
    models: dict[str, EmulatedModel]
    pullable: dict[str, EmulatedModel]
    version: str
    load_delay: float
    default_num_ctx: int
    # loaded model name -> time.monotonic() after which it counts as unloaded
    loaded: dict[str, float]
    loaded_num_ctx: dict[str, int]  # loaded model name -> its window
    _installed: dict[str, datetime]
    _load_lock: asyncio.Lock
    _faults: FaultBook

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any]:
        body = request[BODY]
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
        faults = self._faults.take_stream_faults(request.path, name)
        resp = web.StreamResponse(headers={"Content-Type": NDJSON})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):  # a client that hangs up needs no answer
            await resp.write(ndjson_line({"status": "pulling manifest"}))
            if model is None:
                await resp.write(ndjson_line({"error": PULL_MISSING}))
                return resp
            lines = list(catalogue.pull_progress(model))
            for index in range(len(lines) + 1):
                if (fault := await faults.due(index, len(lines))) is not None:
                    if fault.kind != DROP:  # a download that failed: Ollama says why
                        await resp.write(ndjson_line({"error": fault.error}))
                    elif request.transport is not None:
                        request.transport.close()
                    return resp
                if index < len(lines):
                    await resp.write(ndjson_line(lines[index]))
                    await asyncio.sleep(0)
            self._install(model)
            await resp.write(ndjson_line({"status": "success"}))
        return resp

    async def _embed(self, request: web.Request) -> web.Response:
        """EmbedHandler at v0.12.6: the input checked, then the model found and loaded (even
        for no input), each text cut to the window, then embedded (ollama_text.embedding)."""
        started = time.monotonic()
        body = self._body(request)
        texts = _embed_input(body.get("input"))
        name, model = self._lookup(body)
        await self._load(model)
        loaded = time.monotonic()
        self._release(model, ollama_text.parse_keep_alive(body.get("keep_alive")))
        if not texts:
            return json_response({"model": name, "embeddings": []})
        # ctxLen: the request's num_ctx or the server's default, at most the trained maximum.
        window = answers.context_window(body, model, self.default_num_ctx)
        fitted = [_fit(t, model, window, body.get("truncate") is not False) for t in texts]
        if "embedding" not in model.capabilities and model.family in OLLAMA_ENGINE_FAMILIES:
            raise ApiError(500, NO_EMBEDDINGS)
        dims = body.get("dimensions")
        size = dims if isinstance(dims, int) and 0 < dims < model.embedding_length else None
        return json_response(
            {
                "model": name,
                "embeddings": [
                    ollama_text.embedding(text, size or model.embedding_length, model.name)
                    for text, _ in fitted
                ],
                "total_duration": max(int((time.monotonic() - started) * 1e9), 1),
                "load_duration": max(int((loaded - started) * 1e9), 1),
                "prompt_eval_count": sum(tokens for _, tokens in fitted),
            }
        )


def _embed_input(raw: object) -> list[str]:
    """The texts of /api/embed's input: a string (none if empty) or a list of strings."""
    if raw is None or (isinstance(raw, str) and not raw):
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        return list(raw)
    raise ApiError(400, "invalid input type")


def _fit(text: str, model: EmulatedModel, window: int, truncate: bool) -> tuple[str, int]:
    """The text the model embeds and its token count: one longer than the window is an error
    without truncate, else cut to the window less the BOS and EOS tokens the runner adds."""
    tokens = answers.count_tokens(text, model)
    if tokens <= window:
        return text, tokens
    if not truncate:
        raise ApiError(400, EMBED_TOO_LONG)
    kept = window - EMBED_SPECIAL_TOKENS
    if kept <= 0:
        raise ApiError(400, "input after truncation exceeds maximum context length")
    return text[: int(kept * model.chars_per_token)], kept
