"""/memory: what the bot remembers about the member who asks (their notes: facts they asked
it to remember, see bot.core.memory.notes). Each member sees and deletes only their own;
/memory purge deletes every member's notes of the server (Manage Server, checked here).
Every reply is private."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidRequestError
from bot.core.memory.notes import DM_SCOPE, MAX_NOTES_PER_MEMBER, MemberNotes
from bot.discord_app.routing import guild_key
from cogs.shared import MAX_AUTOCOMPLETE_CHOICES

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot
    from bot.storage.memory import NoteRecord

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
MAX_CHOICE_NAME_CHARS = 100  # an autocomplete choice's name
NO_DATABASE = "This bot keeps no database: it remembers nothing about anyone."
NOTES_ON = (
    "Members' notes are on here: when you ask the bot to remember something about you, it "
    "keeps it and uses it in your questions."
)
NOTES_OFF = "Members' notes are off here: the bot stores no new notes and uses none."
KEPT_WHILE_OFF = "Your notes below are kept, unused, until you or an admin delete them."
HOW_TO_FORGET = "Forget one with `/memory forget note:<number>`, or all with `/memory forget`."
CONVERSATIONS = (
    "Conversations themselves are kept per channel (and per member in per-member channels), "
    "with a running summary and search vectors of their messages: `/reset` deletes them."
)


def scope_of(interaction: discord.Interaction) -> str:
    """Where the asker's notes live: the server's scope, or one scope for direct messages."""
    return DM_SCOPE if interaction.guild_id is None else guild_key(interaction.guild_id)


def paged(lines: Sequence[str], limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Lines joined into messages of at most ``limit`` characters (a line is never split:
    a note is at most a few hundred characters)."""
    pages: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            pages.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:limit]
    if current:
        pages.append(current)
    return pages


def show_lines(notes: Sequence[NoteRecord], enabled: bool) -> list[str]:
    """What /memory show says: the asker's notes, numbered, and what the bot does with them."""
    state = NOTES_ON if enabled else NOTES_OFF
    if not notes:
        return [f"🧠 The bot has no notes about you here. {state}", CONVERSATIONS]
    head = f"🧠 What the bot remembers about you here ({len(notes)} notes, only you see this):"
    lines = [head, *(f"**{number}.** {note.text}" for number, note in enumerate(notes, 1))]
    lines.append(state if enabled else f"{NOTES_OFF} {KEPT_WHILE_OFF}")
    lines += [HOW_TO_FORGET, CONVERSATIONS]
    return lines


def choice_name(number: int, text: str) -> str:
    name = f"{number}. {text}"
    return name if len(name) <= MAX_CHOICE_NAME_CHARS else name[: MAX_CHOICE_NAME_CHARS - 1] + "…"


class Memory(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    @property
    def notes(self) -> MemberNotes:
        memory = self.bot.manager.memory
        if memory is None:
            raise InvalidRequestError(NO_DATABASE)
        return memory.notes

    memory = app_commands.Group(
        name="memory", description="What the bot remembers about you; only you see yours"
    )

    @memory.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the notes the bot keeps about you here (only you see them)."""
        scope = scope_of(interaction)
        notes = await self.notes.list(scope, interaction.user.id)
        enabled = await self.notes.enabled(scope)
        first, *more = paged(show_lines(notes, enabled))
        await interaction.response.send_message(first, ephemeral=True)
        for page in more:  # up to 50 notes of 300 characters: everything stored is shown
            await interaction.followup.send(page, ephemeral=True)

    @memory.command(name="forget")
    @app_commands.describe(
        note="The number of the note, as /memory show lists them; leave empty to forget all"
    )
    async def forget(
        self,
        interaction: discord.Interaction,
        note: app_commands.Range[int, 1, MAX_NOTES_PER_MEMBER] | None = None,
    ) -> None:
        """Delete one of your notes, or all of them (only ever your own)."""
        scope, member = scope_of(interaction), interaction.user.id
        if note is None:
            deleted = await self.notes.forget_all(scope, member)
            said = (
                f"🗑️ Forgot your {deleted} notes here."
                if deleted
                else "You have no notes here: there is nothing to forget."
            )
            await interaction.response.send_message(said, ephemeral=True)
            return
        # Numbered as /memory show lists this member's own notes: another member's notes are
        # never in the list, so no number can reach them.
        mine = await self.notes.list(scope, member)
        if note > len(mine) or not await self.notes.forget(scope, member, mine[note - 1].id):
            raise InvalidRequestError(
                f"You have no note {note} here (you have {len(mine)}): `/memory show` lists them."
            )
        await interaction.response.send_message(
            f"🗑️ Forgot note {note}: “{mine[note - 1].text}”.", ephemeral=True
        )

    @forget.autocomplete("note")
    async def note_autocomplete(
        self, interaction: discord.Interaction, current: int | str
    ) -> list[app_commands.Choice[int]]:
        """The asker's own notes, numbered; those whose text holds what was typed."""
        memory = self.bot.manager.memory
        if memory is None:
            return []
        try:
            notes = await memory.notes.list(scope_of(interaction), interaction.user.id)
        except Exception:  # autocomplete must answer quickly whatever happens
            log.debug("note autocomplete failed", exc_info=True)
            return []
        needle = str(current).strip().lower()
        return [
            app_commands.Choice(name=choice_name(number, note.text), value=number)
            for number, note in enumerate(notes, 1)
            if needle in f"{number} {note.text.lower()}"
        ][:MAX_AUTOCOMPLETE_CHOICES]

    @memory.command(name="purge")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def purge(self, interaction: discord.Interaction) -> None:
        """Admins: delete every member's notes in this server."""
        if interaction.guild_id is None:
            raise InvalidRequestError("There is no server here: `/memory forget` deletes yours.")
        scope = guild_key(interaction.guild_id)
        deleted = await self.notes.purge(scope)
        log.info("%s purged the %d member notes of %s", interaction.user.id, deleted, scope)
        state = (
            "Members' notes are still on: `/settings memory` turns them off."
            if await self.notes.enabled(scope)
            else "Members' notes are off here."
        )
        await interaction.response.send_message(
            f"🗑️ Deleted {deleted} notes of this server's members. {state}", ephemeral=True
        )


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Memory(bot))
