"""PersonaStore: the servers' named personas (seed 003's assistants), one row each.

As in the other stores, each method is one database operation in its own session and
transaction, writes are serialised in-process (SQLite admits one writer at a time), and
database failures become StorageError. Checking what a persona holds is the core's work
(``bot.core.personas``); a name taken twice is told apart here, by the unique constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.core.errors import StorageError
from bot.storage.models import Persona, utcnow
from bot.storage.operations import Store

# The columns ``update`` may change (the name, scope and author are a persona's identity).
CHANGEABLE = frozenset(
    {"description", "system_prompt", "model", "preset", "options", "tools"}
)  # fmt: skip


class PersonaNameTaken(Exception):
    """The server already has a persona of that name."""


@dataclass(frozen=True, slots=True)
class PersonaRecord:
    """A stored persona. ``tools`` None: the tools of the channel it answers in."""

    name: str
    system_prompt: str | None
    description: str | None = None
    model: str | None = None
    preset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] | None = None
    created_by: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _record(row: Persona) -> PersonaRecord:
    return PersonaRecord(
        name=row.name,
        system_prompt=row.system_prompt,
        description=row.description,
        model=row.model,
        preset=row.preset,
        options=dict(row.options or {}),
        tools=None if row.tools is None else tuple(row.tools),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _column_values(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise ValueError(f"not persona columns: {', '.join(sorted(unknown))}")
    values = dict(changes)
    if "options" in values:
        values["options"] = dict(values["options"] or {}) or None
    if values.get("tools") is not None:
        values["tools"] = list(values["tools"])
    return values


class PersonaStore(Store):
    # reads ---------------------------------------------------------------------------------
    async def list(self, scope: str) -> list[PersonaRecord]:
        """A server's personas by name."""
        query = select(Persona).where(Persona.scope == scope).order_by(Persona.name)
        async with self._reading() as db:
            return [_record(row) for row in await db.scalars(query)]

    async def get(self, scope: str, name: str) -> PersonaRecord | None:
        query = select(Persona).where(Persona.scope == scope, Persona.name == name)
        async with self._reading() as db:
            row = await db.scalar(query)
            return None if row is None else _record(row)

    async def count(self, scope: str) -> int:
        query = select(func.count()).select_from(Persona).where(Persona.scope == scope)
        async with self._reading() as db:
            return int(await db.scalar(query) or 0)

    # writes --------------------------------------------------------------------------------
    async def create(
        self,
        scope: str,
        name: str,
        *,
        system_prompt: str | None,
        created_by: int | None = None,
        limit: int | None = None,
        **columns: Any,
    ) -> PersonaRecord | None:
        """Add a persona; None when the server already has ``limit`` of them (counted in the
        same transaction). Raises PersonaNameTaken for a name the server already uses."""
        values = _column_values(columns)
        try:
            async with self._writing() as db:
                names = list(await db.scalars(select(Persona.name).where(Persona.scope == scope)))
                if name in names:
                    raise PersonaNameTaken(name)
                if limit is not None and len(names) >= limit:
                    return None
                row = Persona(
                    scope=scope,
                    name=name,
                    system_prompt=system_prompt,
                    created_by=created_by,
                    **values,
                )
                db.add(row)
                await db.flush()
                return _record(row)
        except StorageError as exc:
            # Another process added the name between the read and the insert.
            if isinstance(exc.__cause__, IntegrityError):
                raise PersonaNameTaken(name) from exc.__cause__
            raise

    async def update(self, scope: str, name: str, **changes: Any) -> PersonaRecord | None:
        """Change some columns of a persona (see CHANGEABLE); None: no such persona."""
        values = _column_values(changes)
        where = (Persona.scope == scope, Persona.name == name)
        async with self._writing() as db:
            if values:
                await db.execute(
                    update(Persona).where(*where).values(updated_at=utcnow(), **values)
                )
            row = await db.scalar(select(Persona).where(*where))
            return None if row is None else _record(row)

    async def delete(self, scope: str, name: str) -> bool:
        async with self._writing() as db:
            result = await db.execute(
                delete(Persona).where(Persona.scope == scope, Persona.name == name)
            )
            return bool(result.rowcount)
