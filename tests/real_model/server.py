"""Real models behind Ollama's HTTP API on 127.0.0.1, for the real-model stage.

The wire format is Ollama's (docs/api.md, api/types.go; see also tests/emulators, whose
encoding helpers this reuses): the official `ollama` client and the bot cannot tell it from
a real server. Underneath, llama.cpp runs real GGUF models (tests/real_model/engine.py),
each prompt rendered with the model's own chat template. Every generation is recorded, so a
test can compare what a user was shown with what the model wrote.

A prompt longer than its window is, by default, cut as Ollama cuts it (TRUNCATE: the
oldest messages go, system messages and the last one stay; what still overflows loses its
oldest tokens), silently but recorded in ``truncations``; REFUSE answers llama.cpp's
error instead. Not served: /api/generate, /api/copy, /api/delete, /api/create (the bot
uses none of them), images (ignored: neither model has vision), thinking (refused: neither
model thinks). Run it by hand: `python -m tests.real_model.server --port 11434`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from tests.emulators.ollama_answers import ApiError, json_response
from tests.emulators.ollama_text import normalize_name, parse_keep_alive, rfc3339
from tests.real_model import completion
from tests.real_model.completion import REFUSE, TRUNCATE, Generation
from tests.real_model.engine import Engine

VERSION: Final = "0.12.6"  # the Ollama whose behaviour this follows (as the emulator does)
PULL_MISSING: Final = "pull model manifest: file does not exist"
# The free-form licence text /api/show carries; the packages' own files have the terms.
LICENSE: Final = "See the model package's licence (Gemma Terms of Use; Apache-2.0 for SmolLM2)."

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


class RealModelServer:
    def __init__(
        self,
        engine: Engine,
        *,
        port: int = 0,
        default_num_ctx: int = completion.DEFAULT_NUM_CTX,
        context_overflow: str = TRUNCATE,
    ) -> None:
        if context_overflow not in (TRUNCATE, REFUSE):
            raise ValueError(f"context_overflow must be {TRUNCATE!r} or {REFUSE!r}")
        self.engine = engine
        self.default_num_ctx = default_num_ctx
        self.context_overflow = context_overflow
        self.generations: list[Generation] = []  # every chat answer, in the order begun
        self.truncations: list[tuple[int, int]] = []  # (prompt tokens, window) cut to fit
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # method, path, body
        self.url = ""
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._errors])
        for method, path, handler in (
            ("GET", "/", self._root),
            ("HEAD", "/", self._root),
            ("GET", "/api/version", self._version),
            ("GET", "/api/tags", self._tags),
            ("GET", "/api/ps", self._ps),
            ("POST", "/api/show", self._show),
            ("POST", "/api/pull", self._pull),
            ("POST", "/api/chat", functools.partial(completion.chat, self)),
            ("POST", "/api/embed", functools.partial(completion.embed, self)),
        ):
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self._port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RealModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- plumbing -------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        body = await completion.read_body(request)
        self.requests.append((request.method, request.path, body))
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response({"error": exc.message}, exc.status)

    def lookup(self, body: dict[str, Any]) -> str:
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise ApiError(400, "model is required")
        if normalize_name(name) not in self.engine.specs:
            raise ApiError(404, f"model '{name}' not found")
        return normalize_name(name)

    def window(self, name: str, options: dict[str, Any]) -> int:
        """num_ctx, else the server's default; never beyond the model's trained window."""
        requested = options.get("num_ctx")
        window = requested if isinstance(requested, int) and requested > 0 else None
        return min(window or self.default_num_ctx, self.engine.trained_context(name))

    def _details(self, name: str) -> dict[str, Any]:
        spec, family = self.engine.specs[name], self.engine.architecture(name)
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": spec.parameter_size,
            "quantization_level": spec.quantization_level,
        }

    def _entry(self, name: str) -> dict[str, Any]:
        path = self.engine.specs[name].path
        return {
            "name": name,
            "model": name,
            "size": path.stat().st_size,
            "digest": _digest(path),
            "details": self._details(name),
        }

    # -- endpoints ------------------------------------------------------------------------
    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.Response:
        return json_response({"version": VERSION})

    async def _tags(self, request: web.Request) -> web.Response:
        models = []
        for name, spec in self.engine.specs.items():
            modified = datetime.fromtimestamp(spec.path.stat().st_mtime, UTC)
            models.append({**self._entry(name), "modified_at": rfc3339(modified)})
        return json_response({"models": models})

    async def _ps(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        models = []
        for name, loaded in self.engine.loaded().items():
            left = loaded.expires - time.monotonic()
            # Go's largest duration, about 292 years, for a model in use ("never").
            expires = now + timedelta(days=106_751) if left > 1e9 else now + timedelta(seconds=left)
            models.append(
                {
                    **self._entry(name),
                    "expires_at": rfc3339(expires),
                    "size_vram": 0,  # all on the CPU
                    "context_length": loaded.window,
                }
            )
        return json_response({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        name = self.lookup(await completion.require_body(request))
        spec = self.engine.specs[name]
        info: dict[str, Any] = {}
        for key, value in self.engine.metadata[name].items():
            if key.startswith("tokenizer."):
                continue  # Ollama lists the tokenizer only with verbose
            info[key] = int(value) if value.isdigit() else value
        stops = "\n".join(f'{"stop":<30} "{s}"' for s in spec.template.stops)
        return json_response(
            {
                "license": LICENSE,
                "modelfile": f"# Modelfile of the real-model stage\nFROM {spec.path}\n",
                "parameters": stops,
                "template": spec.template.name,
                "details": self._details(name),
                "model_info": info,
                "capabilities": list(spec.capabilities),
                "modified_at": rfc3339(datetime.fromtimestamp(spec.path.stat().st_mtime, UTC)),
            }
        )

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = await completion.require_body(request)
        try:
            self.lookup(body)
            lines: list[dict[str, Any]] = [{"status": "pulling manifest"}, {"status": "success"}]
        except ApiError:
            lines = [{"status": "pulling manifest"}, {"error": PULL_MISSING}]
        if body.get("stream") is False:
            if "error" in lines[-1]:
                raise ApiError(500, PULL_MISSING)
            return json_response(lines[-1])
        return await completion.send_lines(request, lines)


def keep_alive(body: dict[str, Any]) -> float:
    return parse_keep_alive(body.get("keep_alive"))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the stage's models by hand, e.g. to point a development bot at them."""
    from tests.real_model.models import gemma3, smollm2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=11434)
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with RealModelServer(Engine([smollm2(), gemma3()]), port=args.port) as server:
            print(f"serving {', '.join(server.engine.specs)} on {server.url}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
