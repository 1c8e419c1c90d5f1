"""Members' notes: short facts a member asked the bot to remember about them ("I prefer
Python"), kept per scope ("guild:<id>" for a server, "dm" for direct messages) and member.

Privacy: every read and delete names the member it acts for, and the store matches both
scope and member, so one member's call never lists or deletes another's. Only ``purge``
(an admin's, for a whole scope) acts on everyone's. A server opts in: its settings session
(whose id is the scope, "guild:<id>") has ``member_notes`` on.

The ``remember`` tool is off by default (``default_on=False``): the front end offers it
where the server has opted in, and the tool checks again, since a channel's admin may list
it among the channel's tools without the server having opted in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidRequestError
from bot.core.tools.registry import Tool, ToolContext, ToolError

if TYPE_CHECKING:
    from bot.storage.memory import MemoryStore, NoteRecord

log = logging.getLogger(__name__)

REMEMBER = "remember"  # the tool's name

MAX_NOTES_PER_MEMBER = 50
MAX_NOTE_CHARS = 300
DM_SCOPE = "dm"

NOTES_OFF = "Members' notes are off here: a server admin can turn them on in the server's settings."


class NoteRefusedError(InvalidRequestError):
    """A note that cannot be stored; the message says why, politely, to the member."""


def clean_note(text: object) -> str:
    """A note as stored: one line, trimmed, within the bound (else NoteRefusedError)."""
    if not isinstance(text, str) or not text.strip():
        raise NoteRefusedError("A note needs some text.")
    note = " ".join(text.split())
    if len(note) > MAX_NOTE_CHARS:
        raise NoteRefusedError(
            f"That note is {len(note)} characters long; a note holds at most "
            f"{MAX_NOTE_CHARS}. Please say it in fewer words."
        )
    return note


class MemberNotes:
    """The notes service: what the cogs (``/memory``), the ``remember`` tool and the answer
    path use."""

    def __init__(self, store: MemoryStore, *, max_notes: int = MAX_NOTES_PER_MEMBER) -> None:
        self._store = store
        self.max_notes = max_notes

    async def enabled(self, scope: str) -> bool:
        """Whether the scope's server has opted in (its settings' ``member_notes``)."""
        return await self._store.notes_enabled(scope)

    async def add(self, scope: str, user_id: int, text: str) -> NoteRecord:
        """Store a note for this member (the same note twice is kept once)."""
        note = clean_note(text)
        added = await self._store.add_note(scope, user_id, note, limit=self.max_notes)
        if added is None:
            raise NoteRefusedError(
                f"You already have {self.max_notes} notes here, the most the bot keeps for "
                "one member. Forget some with /memory forget first."
            )
        return added

    async def list(self, scope: str, user_id: int) -> list[NoteRecord]:
        """This member's notes in the scope, oldest first."""
        return await self._store.notes(scope, user_id)

    async def notes_for(self, scope: str, user_id: int) -> list[str]:
        """The texts of this member's notes, for a question they ask (``notes=[...]``)."""
        return [note.text for note in await self._store.notes(scope, user_id)]

    async def forget(self, scope: str, user_id: int, note_id: int) -> bool:
        """Delete one of this member's notes; False if they have none with that id."""
        return await self._store.forget_note(scope, user_id, note_id)

    async def forget_all(self, scope: str, user_id: int) -> int:
        """Delete all of this member's notes in the scope; how many went."""
        return await self._store.forget_notes(scope, user_id)

    async def purge(self, scope: str) -> int:
        """Delete every member's notes in the scope (for admins only: check before)."""
        deleted = await self._store.purge_notes(scope)
        log.info("purged %d member notes of %s", deleted, scope)
        return deleted


def remember_tool(notes: MemberNotes) -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        if context.user_id is None or context.scope is None:
            raise ToolError("there is no member to remember this for here")
        if not await notes.enabled(context.scope):
            raise ToolError(NOTES_OFF)
        text = arguments.get("note")
        if not isinstance(text, str):
            raise ToolError("give note as a string")
        try:
            note = await notes.add(context.scope, context.user_id, text)
        except NoteRefusedError as exc:
            raise ToolError(exc.user_message) from None
        return f"Remembered for this member: {note.text}"

    return Tool(
        name=REMEMBER,
        description="Remember a short fact about the member you are talking to, that they "
        "asked you to remember or clearly want kept (a preference, their name, a project): "
        "it is shown to you in their later questions. One fact per call, in the third "
        "person (e.g. 'Prefers Python to Java'). Never store secrets or facts about others.",
        parameters={
            "type": "object",
            "properties": {
                "note": {
                    "type": "string",
                    "description": f"The fact, at most {MAX_NOTE_CHARS} characters.",
                }
            },
            "required": ["note"],
        },
        handler=handler,
        # Off by default: it stores what members say, which a server opts into.
        default_on=False,
    )
