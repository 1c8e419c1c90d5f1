"""The edge in front of the Discord emulator: it passes things through unchanged, fails as
told, and discord.py reacts to each failure the way docs/reliability.md says."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import discord
import discord.gateway
import pytest
import yarl

from tests.emulators.discord_faults import (
    DiscordEdge,
    globally_rate_limited,
    rate_limited,
    rate_limited_bare,
    rate_limited_body_only,
    rate_limited_without_retry_after,
    server_error,
)
from tests.emulators.discord_server import DiscordEmulator, running_client


def me() -> discord.http.Route:
    return discord.http.Route("GET", "/users/@me")  # built late: Route reads BASE then


@contextlib.asynccontextmanager
async def logged_in() -> AsyncIterator[tuple[DiscordEdge, discord.Client]]:
    """A discord.py client logged in (REST only) through the edge."""
    async with DiscordEmulator() as emu, DiscordEdge(emu) as edge:
        client = discord.Client(intents=discord.Intents.none())
        with emu.patch_discord(), edge.in_front():
            await client.login(emu.token)
            try:
                yield edge, client
            finally:
                await client.close()


async def test_requests_pass_through_unchanged_until_a_fault_is_injected() -> None:
    async with logged_in() as (edge, client):
        who = await client.http.request(me())
        assert who["id"] == str(edge.emu.bot_user_id)
        assert [(c.method, c.path, c.status, c.injected) for c in edge.calls][-1] == (
            "GET", "/api/v10/users/@me", 200, False
        )  # fmt: skip
        edge.inject(server_error(503), route_contains="/channels/", method="GET")
        await client.http.request(me())  # another route: untouched
        with pytest.raises(discord.DiscordServerError) as failed:
            # discord.py retries 500, 502, 504 and 524, not 503.
            await client.http.request(discord.http.Route("GET", "/channels/{c}", c=1))
        assert failed.value.status == 503
        assert [c.status for c in edge.injected()] == [503]


async def test_a_429_with_only_retry_after_in_the_body_is_waited_out() -> None:
    async with logged_in() as (edge, client):
        rule = edge.inject(rate_limited_body_only(0.05), count=2, route_contains="/users/@me")
        assert (await client.http.request(me()))["username"]
        assert rule.hits == 2
        assert edge.calls[-1].status == 200


async def test_a_429_with_headers_and_a_global_429_are_waited_out() -> None:
    async with logged_in() as (edge, client):
        edge.inject(rate_limited(0.05), route_contains="/users/@me")
        edge.inject(globally_rate_limited(0.05), route_contains="/users/@me")
        assert (await client.http.request(me()))["username"]
        assert [c.status for c in edge.calls[-3:]] == [429, 429, 200]


async def test_429s_without_via_or_retry_after_fail_the_request_at_once() -> None:
    async with logged_in() as (edge, client):
        edge.inject(rate_limited_bare(), route_contains="/users/@me")
        with pytest.raises(discord.HTTPException) as banned:
            await client.http.request(me())
        assert banned.value.status == 429 and banned.value.text == "error code: 1015"
        edge.inject(rate_limited_without_retry_after(), route_contains="/users/@me")
        with pytest.raises(KeyError):
            await client.http.request(me())
        assert len(edge.injected(429)) == 2


async def test_refused_then_accepted_on_the_same_port() -> None:
    async with DiscordEmulator() as emu, DiscordEdge(emu) as edge:
        port = edge.port
        await edge.refuse()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(f"{edge.api_base}/gateway")
            await edge.accept()
            assert edge.port == port
            async with session.get(f"{edge.api_base}/gateway") as resp:
                assert resp.status == 200


async def test_a_dropped_gateway_socket_is_resumed_and_a_failing_upgrade_retried() -> None:
    async with DiscordEmulator() as emu, DiscordEdge(emu) as edge:
        emu.add_guild()
        client = discord.Client(intents=discord.Intents.default())
        with emu.patch_discord(), edge.in_front():
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(edge.gateway_url)
            async with running_client(client, emu.token):
                assert edge.gateway_attempts == 1
                assert await edge.drop_gateway() == 1
                await emu.wait_resumed(1)
                assert (emu.identifies, edge.gateway_attempts) == (1, 2)
                # While the gateway refuses upgrades discord.py keeps trying, then gets in.
                edge.gateway_status = 503
                assert await edge.drop_gateway() == 1
                await emu.wait_for(lambda: edge.gateway_attempts >= 3, timeout=10)
                edge.gateway_status = None
                await emu.wait_resumed(2, timeout=20)
                assert emu.identifies == 1
