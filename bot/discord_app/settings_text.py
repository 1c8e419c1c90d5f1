"""How /settings words a channel's options and context window, the layers its options come
from, and its threads switch (moved out of cogs/settings.py, which outgrew a file)."""

from __future__ import annotations

from typing import Any

from discord import app_commands

from bot.core.context_window import FROM_DEFAULT, ContextWindow
from bot.core.presets import get_preset
from bot.storage import SessionSettings


def describe_options(options: dict[str, object], window: ContextWindow | None = None) -> str:
    """The options sent with every question (the model's own parameters do the rest), and
    the context window asked for."""
    chosen = ", ".join(f"`{k}={v}`" for k, v in sorted(options.items()))
    return (chosen or "none chosen: the model's own defaults") + describe_window(window)


def describe_window(window: ContextWindow | None) -> str:
    if window is None:
        return ""
    origin = FROM_DEFAULT if window.source == FROM_DEFAULT else "chosen here"
    if window.capped:
        origin += ", capped at the model's maximum"
    return f"\nContext window: `num_ctx` {window.tokens} ({origin})"


def option_layers(
    guild: SessionSettings, channel: SessionSettings, defaults: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The option layers of this channel, weakest first, as the router resolves them: a
    channel's preset replaces the server's and outranks the server's options."""

    def preset(name: str) -> dict[str, Any]:
        return dict(get_preset(name).options)

    layers = [("default", defaults)]
    if guild.preset and not channel.preset:
        layers.append((f"server preset {guild.preset}", preset(guild.preset)))
    layers.append(("server", guild.options))
    if channel.preset:
        layers.append((f"channel preset {channel.preset}", preset(channel.preset)))
    layers.append(("channel", channel.options))
    return layers


THREADS_CHOICES = [
    app_commands.Choice(name="On: every question here gets a thread of its own", value="on"),
    app_commands.Choice(name="Off: answers stay in the channel (the default)", value="off"),
]


def describe_threads(channel: SessionSettings) -> str:
    """Where questions asked in this channel are answered."""
    if channel.threads:
        return (
            "on: every question here gets a thread of its own (`/ask thread:False` still "
            "answers in the channel); its threads use this channel's settings"
        )
    return "off: answers stay in the channel unless asked with `/ask thread:True`"
