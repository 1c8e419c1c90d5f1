"""Every route of the bot's HTTP server is classified, and each admin one is refused without
the admin token, which is compared in constant time."""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.ops import http_api
from tests.e2e.conftest import E2E_ADMIN_TOKEN, World, world

# (method, route) -> a path that reaches it. aiohttp adds HEAD beside every GET.
ADMIN_ROUTES = {
    ("POST", "/admin/models/{name}/pull"): "/admin/models/llama3.2/pull",
    ("POST", "/admin/cleanup"): "/admin/cleanup?days=1",
}
# Read-only operations endpoints, for probes and dashboards (bound to 127.0.0.1 unless
# HTTP_HOST says otherwise).
PUBLIC_ROUTES = {
    ("GET", "/healthz"): "/healthz",
    ("GET", "/stats"): "/stats",
    ("GET", "/metrics"): "/metrics",
    ("GET", "/models"): "/models",
}
# What the admin handlers log once they ran: a refused request must leave neither.
ADMIN_LOG_LINES = ("pulled through the admin API", "admin cleanup deleted")


def _near_miss(token: str) -> str:
    """Another token of the same length: only its last character differs."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


REFUSED_HEADERS = {
    "none": {},
    "wrong, same length": {"Authorization": f"Bearer {_near_miss(E2E_ADMIN_TOKEN)}"},
    "a prefix of it": {"Authorization": f"Bearer {E2E_ADMIN_TOKEN[:-4]}"},
    "longer": {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}x"},
    "empty": {"Authorization": "Bearer "},
    "without the scheme": {"Authorization": E2E_ADMIN_TOKEN},
    "another scheme": {"Authorization": f"Basic {E2E_ADMIN_TOKEN}"},
    "not ASCII": {"Authorization": "Bearer t\u00f6ken-\u00e9\u00e8"},
}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[World, str]]:
    async with world(tmp_path, HTTP_PORT="0", ADMIN_TOKEN=E2E_ADMIN_TOKEN) as w:
        assert w.bot.http_server is not None
        yield w, f"http://127.0.0.1:{w.bot.http_server.port}"


def routes(w: World) -> set[tuple[str, str]]:
    assert w.bot.http_server is not None
    found = set()
    for route in w.bot.http_server.app.router.routes():
        if route.method != "HEAD":
            found.add((route.method, route.resource.canonical if route.resource else ""))
    return found


async def test_every_route_is_classified(served: tuple[World, str]) -> None:
    w, _ = served
    found = routes(w)
    unclassified = found - set(ADMIN_ROUTES) - set(PUBLIC_ROUTES)
    assert not unclassified, f"classify these in {__name__}: admin or public? {unclassified}"
    assert found == set(ADMIN_ROUTES) | set(PUBLIC_ROUTES), "a classified route is gone"


async def test_admin_routes_are_refused_without_the_token(
    served: tuple[World, str], caplog: pytest.LogCaptureFixture
) -> None:
    w, base = served
    caplog.set_level(logging.INFO, logger="bot.ops.http_api")
    pulls_before = [r.path for r in w.ollama.requests].count("/api/pull")
    async with aiohttp.ClientSession() as http:
        for (method, _), path in ADMIN_ROUTES.items():
            for case, headers in REFUSED_HEADERS.items():
                async with http.request(method, base + path, headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 401, (path, case, body)
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
                    assert body == {"error": "a valid admin token is required"}
        assert [r.path for r in w.ollama.requests].count("/api/pull") == pulls_before
        assert not [r for r in caplog.records if r.getMessage().startswith(ADMIN_LOG_LINES)]
        # The public routes need no token.
        for (method, _), path in PUBLIC_ROUTES.items():
            async with http.request(method, base + path) as resp:
                assert resp.status == 200, path
        # And the right token is what opens the admin ones (so the refusals above mean it).
        auth = {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}"}
        for (method, _), path in ADMIN_ROUTES.items():
            async with http.request(method, base + path, headers=auth) as resp:
                assert resp.status == 200, (path, await resp.text())
    assert [r.path for r in w.ollama.requests].count("/api/pull") == pulls_before + 1
    logged = [r.getMessage() for r in caplog.records]
    assert all(any(line in m for m in logged) for line in ADMIN_LOG_LINES), logged


def _function_source(function: object) -> ast.FunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def test_the_admin_token_is_compared_in_constant_time() -> None:
    # The check of every admin route goes through _authorized, and _authorized compares the
    # token with compare_digest only: no ==, !=, startswith or `in` on it, which stop at
    # the first differing character and leak its position through timing.
    guard = _function_source(http_api._admin)
    assert any(
        isinstance(n, ast.Call) and getattr(n.func, "id", None) == "_authorized"
        for n in ast.walk(guard)
    )
    check = _function_source(http_api._authorized)
    calls = [
        n.func.attr
        for n in ast.walk(check)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    ]
    assert "compare_digest" in calls
    assert not {"startswith", "endswith", "find", "index"} & set(calls)
    secret_names = {"token", "given"}
    for node in ast.walk(check):
        if isinstance(node, ast.Compare):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            assert not names & secret_names, ast.unparse(node)
