"""Fuzz: what an MCP server answers a tool call with (bot/core/tools/mcp_link.py ServerLink.call,
mcp_tools.result_text, run by registry.ToolSet): huge texts, many blocks, images and binary
resources, unknown block types, malformed blocks the SDK refuses, errors, structured content.

The server's answer goes through the SDK's own model (CallToolResult.model_validate, as its
client does with what comes off the wire) and the link's real ``call``. Properties: the call
never raises out of ToolSet.run; what the model reads is bounded by the tool's limit; a valid
result's text is passed on (truncated with a marker when too long), binary data is named,
never inlined; an error result or a malformed one becomes an error outcome.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from bot.core.tools.mcp_config import McpServerConfig
from bot.core.tools.mcp_link import ServerLink
from bot.core.tools.mcp_tools import registry_tools, result_text
from bot.core.tools.registry import MAX_TOOL_RESULT_CHARS, TRUNCATED, ToolRegistry
from tests.fuzz.support import awkward_text, fuzz

BLOB = "QUJD" * 5000  # base64 that must never reach the model

texts = awkward_text(100) | st.integers(0, 300_000).map(lambda n: "y" * n)
valid_blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(lambda m: {"type": "image", "data": BLOB, "mimeType": m}, awkward_text(20)),
    st.builds(lambda m: {"type": "audio", "data": BLOB, "mimeType": m}, awkward_text(20)),
    st.builds(
        lambda u, t: {"type": "resource", "resource": {"uri": u, "text": t}},
        st.sampled_from(["file:///etc/passwd", "https://x.example/a", "mem://1"]),
        texts,
    ),
    st.builds(
        lambda u: {"type": "resource", "resource": {"uri": u, "blob": BLOB}},
        st.sampled_from(["file:///bin/sh", "mem://2"]),
    ),
    st.builds(
        lambda u, n: {"type": "resource_link", "uri": u, "name": n},
        st.sampled_from(["file:///etc/passwd", "https://x.example"]),
        awkward_text(20),
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
malformed_blocks = st.one_of(
    st.builds(lambda t: {"type": t}, st.text(max_size=10)),
    st.builds(lambda v: {"type": "text", "text": v}, json_values),
    st.builds(lambda v: {"type": "image", "data": v}, json_values),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    json_values,
)
results = (
    st.fixed_dictionaries(
        {"content": st.lists(valid_blocks | malformed_blocks, max_size=6)},
        optional={
            "isError": st.booleans() | json_values,
            "structuredContent": json_values,
        },
    )
    | json_values
)


class Client:
    """The SDK client as the link uses it: the server's answer parsed by the SDK's model."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def call_tool(self, name: str, arguments: dict[str, Any], **_: Any) -> CallToolResult:
        return CallToolResult.model_validate(self.raw)


def link_with(raw: Any) -> ServerLink:
    hub = SimpleNamespace(tool_timeout=5.0, registry=ToolRegistry())
    link = ServerLink(hub, McpServerConfig(name="srv", command="true"))  # type: ignore[arg-type]
    link._client = Client(raw)  # type: ignore[assignment]  # connected, as _attempt leaves it
    return link


@fuzz(200)
@given(raw=results)
@example(raw={"content": [{"type": "text", "text": "z" * 1_000_000}]})
@example(raw={"content": [{"type": "text", "text": "a"}] * 5000})
@example(raw={"content": [], "structuredContent": {"k": "v" * 100_000}})
@example(raw={"content": [{"type": "image", "data": BLOB}]})
@example(raw={"content": [{"type": "text", "text": "boom"}], "isError": True})
def test_results_are_bounded_and_translated(raw: Any) -> None:
    link = link_with(raw)

    async def run() -> Any:
        (tool,) = registry_tools("srv", [tool_listing()], link.call, timeout=5.0)
        registry = ToolRegistry([tool])
        toolset = registry.select([tool.name])
        return tool, (await toolset.run([{"function": {"name": tool.name, "arguments": {}}}]))[0]

    tool, outcome = asyncio.run(run())
    assert len(outcome.content) <= tool.max_result_chars <= MAX_TOOL_RESULT_CHARS
    assert BLOB not in outcome.content, "binary data inlined"
    try:
        parsed = CallToolResult.model_validate(raw)
    except ValidationError:
        assert outcome.status == "error" and outcome.content.startswith("Error: ")
        return
    if parsed.is_error:
        assert outcome.status == "error"
        return
    assert outcome.status == "ok"
    text = result_text(parsed)
    if len(text) <= tool.max_result_chars:
        assert outcome.content == text
    else:
        assert outcome.content.endswith(TRUNCATED)
        assert text.startswith(outcome.content.removesuffix(TRUNCATED))
    for block in parsed.content:
        if isinstance(block, TextContent) and len(text) <= tool.max_result_chars:
            assert block.text in outcome.content


def tool_listing() -> Any:
    from mcp.types import Tool as McpTool

    return McpTool(name="echo", input_schema={"type": "object"})
