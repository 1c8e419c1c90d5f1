"""Where discord.py connects, and a failed connection in words."""

from __future__ import annotations

import os

import discord
import yarl


def point_discord_at(api_base: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST calls and gateway connection elsewhere (a proxy, the emulator).

    These are discord.py internals, pinned by its minor version; a contract test guards them.
    """
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def reason(error: OSError) -> str:
    """An OS error in words: "Connection refused", not "Connect call failed ('host', 1)"."""
    if error.strerror and not error.strerror.startswith("Connect call failed"):
        return error.strerror
    return os.strerror(error.errno) if error.errno else str(error)
