"""/stats and the HTTP surface end to end: the real bot against the Discord and Ollama emulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import (
    World,
    open_command_to_everyone,
    settled_statistics,
    wait_private_note,
    world,
)
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, InteractionRecord


async def ask(w: World, prompt: str) -> None:
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)


def embeds_of(rec: InteractionRecord) -> list[dict[str, Any]]:
    shown = [m for m in [rec.original, *rec.followups] if m is not None and not m.deleted]
    return [e for m in shown for e in m.embeds]


async def test_stats_shows_an_admin_the_manager_statistics(w: World) -> None:
    await ask(w, "one")
    await ask(w, "two")
    stats = await settled_statistics(w, 2)
    assert stats["total_requests"] == 2
    rec = await w.discord.invoke_slash("stats", user_id=w.admin.id, **w.where)
    await rec.wait_done(lambda r: bool(embeds_of(r)))
    assert rec.ephemeral
    [embed] = embeds_of(rec)
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Total requests"] == str(stats["total_requests"])
    assert fields["Successful"] == str(stats["successful_requests"])
    assert fields["Failed"] == "0"
    assert fields["Tokens generated"] == f"{stats['total_tokens_generated']:,}"
    assert fields["Active sessions"] == str(stats["active_sessions"])
    [(model, count)] = stats["model_usage"].items()
    assert fields["Model usage"] == f"`{model}`: {count}"
    assert fields["Uptime"]


async def test_stats_is_refused_to_a_member_without_manage_server(w: World) -> None:
    # Discord hides /stats from such members unless an admin opened it to them; the bot's
    # own check is what stands when that happens.
    open_command_to_everyone(w.discord, "stats")
    rec = await w.discord.invoke_slash(
        "stats", user_id=w.alice.id, **w.where, permissions=DEFAULT_PERMISSIONS
    )
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    assert not embeds_of(rec)


async def test_the_bot_serves_healthz_over_http_while_connected(tmp_path: Path) -> None:
    async with world(tmp_path, HTTP_PORT="0") as w:
        assert w.bot.http_server is not None
        base = f"http://127.0.0.1:{w.bot.http_server.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                body = await resp.json()
                assert resp.status == 200, body
            assert body["status"] == "healthy"
            assert {c["status"] for c in body["components"].values()} == {"up"}
            async with http.get(f"{base}/metrics") as resp:
                assert "ollacord_discord_429_total" in await resp.text()
            # Without ADMIN_TOKEN the admin routes do not exist.
            async with http.post(f"{base}/admin/cleanup?days=1") as resp:
                assert resp.status == 404
    # The server stops with the bot.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{base}/healthz")
