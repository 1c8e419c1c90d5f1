"""The floor for ``bench.streaming --floor``: the least a discord.py + ollama bot can do.

It answers /ask with the same libraries as ollacord and nothing else: defer, stream from
Ollama, show the first token, move to a follow-up message once the text passes 2000
characters, and write the final page with a footer line. No sessions, no pacing, no
splitting rules, no queue, no Stop button. Its figures are what this machine and the
emulators cost on their own; ollacord's figures minus these are what ollacord adds.
"""

from __future__ import annotations

import discord
import ollama
from discord import app_commands

from bot.core.config import Settings

NO_MENTIONS = discord.AllowedMentions.none()
PAGE = 1990


class FloorBot(discord.Client):
    def __init__(self, settings: Settings, **options: object) -> None:
        super().__init__(intents=discord.Intents.none(), **options)  # type: ignore[arg-type]
        self.tree = app_commands.CommandTree(self)
        self._settings = settings
        self._ollama = ollama.AsyncClient(host=settings.ollama_host)
        guild = discord.Object(int(settings.dev_guild_id or 0))
        self.tree.command(name="ask", description="Ask the model", guilds=[guild])(self._ask)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=discord.Object(int(self._settings.dev_guild_id or 0)))

    async def _ask(self, interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer()
        text, pages_shown, followup = "", 0, None
        stream = await self._ollama.chat(
            model=self._settings.default_model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        count = 0
        async for part in stream:
            text += part.message.content or ""
            count += 1
            if pages_shown == 0 and text:
                await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
                pages_shown = 1
            elif pages_shown == 1 and len(text) > PAGE:
                await interaction.edit_original_response(
                    content=text[:PAGE], allowed_mentions=NO_MENTIONS
                )
                followup = await interaction.followup.send(
                    text[PAGE:], allowed_mentions=NO_MENTIONS, wait=True
                )
                pages_shown = 2
        final = text[PAGE:] if followup else text
        content = f"{final}\n-# floor · {count} chunks"
        if followup is not None:
            await followup.edit(content=content, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.edit_original_response(content=content, allowed_mentions=NO_MENTIONS)
