"""The request manager's session methods (seed 000): conversations kept in the database,
read as ConversationHistory objects, created, deleted and configured."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.history import ChatMessage, ConversationHistory
from bot.core.queries import checked_settings
from bot.storage.records import SessionSettings

if TYPE_CHECKING:
    from bot.storage import SessionStore


class SessionMethods:
    """Mixed into OllamaRequestManager, which provides these attributes."""

    max_history_length: int
    max_history_tokens: int | None
    default_system_prompt: str | None
    _session_count: int

    @property
    def store(self) -> SessionStore:
        raise NotImplementedError

    def _history(
        self, session_id: str, system_prompt: str | None, messages: list[ChatMessage]
    ) -> ConversationHistory:
        return ConversationHistory(
            session_id,
            max_length=self.max_history_length,
            max_tokens=self.max_history_tokens,
            system_prompt=system_prompt or self.default_system_prompt,
            messages=messages,
        )

    async def get_session(self, session_id: str) -> ConversationHistory | None:
        record = await self.store.get(session_id)
        if record is None:
            return None
        messages = await self.store.messages(session_id, limit=self.max_history_length)
        history = self._history(session_id, record.settings.system_prompt, messages)
        history.created_at = record.created_at
        return history

    async def create_session(
        self, session_id: str, system_prompt: str | None = None
    ) -> ConversationHistory:
        """Start the session afresh (an existing one with this id is replaced)."""
        existed = await self.store.get(session_id) is not None
        record = await self.store.reset(session_id, system_prompt)
        self._session_count += not existed
        history = self._history(session_id, system_prompt, [])
        history.created_at = record.created_at
        return history

    async def delete_session(self, session_id: str) -> bool:
        deleted = await self.store.delete(session_id)
        self._session_count -= deleted
        return deleted

    async def clear_all_sessions(self) -> int:
        count = await self.store.delete_all()
        self._session_count = 0
        return count

    async def delete_idle_sessions(self, older_than: datetime) -> int:
        """Delete sessions not used since ``older_than``; returns how many went."""
        deleted = await self.store.delete_idle(older_than)
        self._session_count = max(0, self._session_count - deleted)
        return deleted

    async def get_session_settings(self, session_id: str) -> SessionSettings:
        record = await self.store.get(session_id)
        return record.settings if record else SessionSettings()

    async def update_session_settings(self, session_id: str, **changes: Any) -> SessionSettings:
        """Change a session's model, system_prompt, options, scope, preset, keep_alive or
        tools (None resets one)."""
        changes = checked_settings(changes)
        settings, created = await self.store.update_settings(session_id, **changes)
        self._session_count += created
        return settings
