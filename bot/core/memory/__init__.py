"""Memory beyond the history window: conversations searchable by meaning (``turn_index``),
a running summary of what fell out of the window (``summary``) and members' notes
(``notes``), behind one entry point (``service.Memory``) that the request manager owns.

May import: the rest of the core (embedding, errors, history, tools.registry) and
``bot.storage.memory`` (only for type checking: a manager without a database never loads
SQLAlchemy; the manager builds the MemoryStore). Never ``discord`` or ``aiohttp``, nor the
manager, the executor or any layer above the core: they call in, through ``Memory``.
"""

from bot.core.memory.service import Memory

__all__ = ["Memory"]
