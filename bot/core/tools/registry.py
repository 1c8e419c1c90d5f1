"""The tool registry: what tools exist, which a query may use, and running the calls a model
makes (concurrently, each with a timeout and a bound on its result).

A tool never takes an answer down: a failure, a timeout or an unknown name becomes an error
result the model reads, and the answer goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from bot.core.config import DEFAULTS

log = logging.getLogger(__name__)

DEFAULT_TOOL_TIMEOUT = DEFAULTS.tool_timeout
MAX_TOOL_RESULT_CHARS = 8000
MAX_TOOL_CALLS_PER_ROUND = 8
TRUNCATED = "\n…(truncated)"

ToolStatus = Literal["ok", "error", "timeout", "unknown"]


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message of the channel a question was asked in, as a tool may read it."""

    author: str
    content: str
    created_at: datetime


class ChannelReader(Protocol):
    """Reads the channel a question was asked in; provided by the front end that can."""

    async def recent_messages(self, limit: int) -> list[ChannelMessage]: ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where a tool call comes from: the conversation, the channel when readable, and the
    member asking with the scope of their notes ("guild:<id>" or "dm") when known."""

    session_id: str | None = None
    channel: ChannelReader | None = None
    user_id: int | None = None
    scope: str | None = None


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool as the model sees it (``name``, ``description``, JSON-schema ``parameters``)
    and how it runs."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: ToolHandler
    timeout: float = DEFAULT_TOOL_TIMEOUT
    max_result_chars: int = MAX_TOOL_RESULT_CHARS
    source: str = "builtin"  # "builtin", or the MCP server it comes from
    default_on: bool = False  # offered where an admin has not chosen the channel's tools

    def schema(self) -> dict[str, Any]:
        """The entry of Ollama's ``tools`` list."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """One call a model made, and what went back to it."""

    name: str
    arguments: dict[str, Any]
    content: str  # the tool message's content
    status: ToolStatus
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class ToolSet:
    """The tools one query may use, with the context their calls run in."""

    tools: Mapping[str, Tool]
    context: ToolContext = field(default_factory=ToolContext)
    # Chosen for the channel by an admin, rather than the default ones: a model that cannot
    # call tools is then worth a word in the footer.
    chosen: bool = False

    def __bool__(self) -> bool:
        return bool(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self.tools.values()]

    async def run(self, calls: Sequence[Mapping[str, Any]]) -> list[ToolOutcome]:
        """Run a round of calls concurrently; outcomes in the calls' order."""
        wanted, dropped = list(calls[:MAX_TOOL_CALLS_PER_ROUND]), calls[MAX_TOOL_CALLS_PER_ROUND:]
        outcomes = list(await asyncio.gather(*(self._run_one(call) for call in wanted)))
        # Every call gets an answer, or the model waits for results that never come.
        refusal = f"Error: not run: at most {MAX_TOOL_CALLS_PER_ROUND} tool calls per round."
        for call in dropped:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            outcomes.append(
                ToolOutcome(
                    str(function.get("name") or ""),
                    arguments if isinstance(arguments, dict) else {},
                    refusal,
                    "error",
                    0.0,
                )
            )
        return outcomes

    async def _run_one(self, call: Mapping[str, Any]) -> ToolOutcome:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):  # some models send the arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}
        started = time.monotonic()
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolOutcome(
                name, arguments, f"Error: there is no tool named {name!r} (tools: {known}).",
                "unknown", 0.0,
            )  # fmt: skip
        status: ToolStatus = "ok"
        try:
            content = await asyncio.wait_for(tool.handler(arguments, self.context), tool.timeout)
        except TimeoutError:
            status = "timeout"
            content = f"Error: the tool did not answer within {tool.timeout:g} s."
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool's failure is the model's to read, never the answer's
            log.info("tool %s failed: %r", name, exc)
            status, content = "error", f"Error: {_describe(exc)}"
        if len(content) > tool.max_result_chars:
            content = content[: tool.max_result_chars - len(TRUNCATED)] + TRUNCATED
        return ToolOutcome(name, arguments, content, status, time.monotonic() - started)


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:500]


class ToolError(Exception):
    """Raised by a tool handler for a failure the model should read (bad argument...)."""


class ToolRegistry:
    """Every tool the bot knows: the built-in ones and those of connected MCP servers."""

    def __init__(self, tools: Sequence[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._unavailable: dict[str, str] = {}  # source -> why its tools are gone
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def replace_source(self, source: str, tools: Sequence[Tool]) -> None:
        """The tools of ``source`` are now ``tools`` (an MCP server (re)connected)."""
        self._tools = {n: t for n, t in self._tools.items() if t.source != source}
        for tool in tools:
            self.add(tool)
        self._unavailable.pop(source, None)

    def mark_unavailable(self, source: str, reason: str) -> None:
        """``source``'s tools are gone until it comes back (its server died or hangs)."""
        self._tools = {n: t for n, t in self._tools.items() if t.source != source}
        self._unavailable[source] = reason

    @property
    def unavailable(self) -> dict[str, str]:
        return dict(self._unavailable)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: (t.source != "builtin", t.name)))

    def names(self) -> list[str]:
        return [tool.name for tool in self]

    def default_names(self) -> list[str]:
        return [tool.name for tool in self if tool.default_on]

    def select(
        self, allowed: Collection[str] | None, context: ToolContext | None = None
    ) -> ToolSet:
        """The tools a query may use: ``allowed`` (None: the default ones) that exist now."""
        names = self.default_names() if allowed is None else allowed
        tools = {n: self._tools[n] for n in names if n in self._tools}
        return ToolSet(tools, context or ToolContext(), chosen=allowed is not None)
