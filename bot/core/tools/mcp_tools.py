"""An MCP server's tools as the registry's: listed page by page (``list_tools``), turned into
``Tool``s named ``<server>.<tool>`` (``registry_tools``; names MCP does not allow are
skipped), their changes watched on 2026-07-28 connections (``watch_tool_changes``), and their
results turned into the text a model reads (``result_text``). ``mcp_link`` does the calling.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.core.tools.registry import Tool, ToolContext

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as McpTool

log = logging.getLogger(__name__)

MAX_TOOL_PAGES = 50
LISTEN_RETRY = 5.0  # seconds before opening a dropped tool-change stream again
# MCP's own rule for tool names (SEP-986), so "<server>.<tool>" stays a plain identifier.
TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

ToolCaller = Callable[[str, dict[str, Any]], Awaitable[str]]  # (tool name, arguments) -> text


async def list_tools(client: Client) -> list[McpTool]:
    """Every tool of the server (at most MAX_TOOL_PAGES pages of them)."""
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def watch_tool_changes(
    client: Client,
    server: str,
    *,
    on_change: Callable[[], None],
    stable_after: float,
    max_pause: float,
) -> None:
    """On 2026-07-28 connections, tool-list changes come on a ``subscriptions/listen`` stream
    (on earlier ones as notifications, which ``mcp_link`` handles): call ``on_change`` for
    each. Re-listen when the stream drops (an idle HTTP stream times out), less and less often
    if it keeps failing (a stream that lasted ``stable_after`` seconds resets the pause)."""
    import anyio
    from mcp.client.subscriptions import ListenNotSupportedError

    capability = client.server_capabilities.tools
    if capability is None or not capability.list_changed:
        return
    pause = LISTEN_RETRY
    while True:
        opened = time.monotonic()
        try:
            async with client.listen(tools_list_changed=True) as events:
                async for _event in events:
                    on_change()
        except ListenNotSupportedError:
            return  # a 2025 session: the server notifies without being asked
        except Exception as exc:
            log.debug("MCP server %s: the tool-change stream ended: %r", server, exc)
        stable = time.monotonic() - opened >= stable_after
        pause = LISTEN_RETRY if stable else min(pause * 2, max_pause)
        await anyio.sleep(pause)
        on_change()  # changes may have been missed meanwhile


def registry_tools(
    server: str, listing: list[McpTool], call: ToolCaller, *, timeout: float
) -> list[Tool]:
    """The tools of ``listing`` as the registry's, each calling ``call`` with its MCP name."""
    tools = []
    for mcp_tool in listing:
        if not TOOL_NAME.match(mcp_tool.name):
            log.warning("MCP server %s: skipping the tool %r (not a valid tool name)",
                        server, mcp_tool.name[:200])  # fmt: skip
            continue
        tools.append(_registry_tool(server, mcp_tool, call, timeout))
    return tools


def _registry_tool(server: str, mcp_tool: McpTool, call: ToolCaller, timeout: float) -> Tool:
    tool_name = mcp_tool.name

    async def handler(arguments: dict[str, Any], _context: ToolContext) -> str:
        return await call(tool_name, arguments)

    schema = dict(mcp_tool.input_schema or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    description = (mcp_tool.description or mcp_tool.title or "").strip()
    return Tool(
        name=f"{server}.{tool_name}",
        description=description or f"The tool {tool_name} of the MCP server {server}.",
        parameters=schema,
        handler=handler,
        timeout=timeout,
        source=server,
    )


def result_text(result: CallToolResult) -> str:
    """A tool result as the text a model reads: text content joined; images, audio and
    binary resources named (``[image: image/png]``); the structured content when nothing
    else was given."""
    from mcp.types import (
        AudioContent,
        EmbeddedResource,
        ImageContent,
        ResourceLink,
        TextContent,
        TextResourceContents,
    )

    parts: list[str] = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        elif isinstance(item, ImageContent):
            parts.append(f"[image: {item.mime_type}]")
        elif isinstance(item, AudioContent):
            parts.append(f"[audio: {item.mime_type}]")
        elif isinstance(item, ResourceLink):
            parts.append(f"[resource link: {item.uri}]")
        elif isinstance(item, EmbeddedResource):
            resource = item.resource
            if isinstance(resource, TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource: {resource.uri} ({resource.mime_type or 'binary'})]")
        else:
            parts.append(f"[{getattr(item, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)
