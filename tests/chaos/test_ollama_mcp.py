"""A tool server (MCP) that fails while the model waits for its tool: one that dies mid-call,
one whose tool hangs, one whose whole process freezes. The member gets an answer saying the
tool failed (the model reads the error), the turn is stored once, and the next question is
answered. That the server itself comes back (restarted after dying, or after freezing and
failing the probe that follows an abandoned call) is shown by tests/e2e/test_mcp.py and
tests/bot/core/tools/test_mcp_servers.py; waiting for it here would cost 10 s a run.

The servers are tests/fixtures/mcp/flaky_server.py (the official SDK's MCPServer), started
as processes by the bot from MCP_CONFIG, as in tests/e2e/test_mcp.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.ollama_world import NEXT_QUESTION, assert_keeps_serving, assert_stored
from tests.e2e.conftest import world
from tests.e2e.test_ask import ask, finished, footer_of, pages_without_footer
from tests.e2e.test_mcp import allow_tools, last_tool_results, server_status
from tests.fixtures.mcp.servers import WAIT, flaky, wait_until, write_mcp_config

TOOL_TIMEOUT = 0.5  # seconds the bot waits for a tool (the server's "timeout" in MCP_CONFIG)


@pytest.mark.parametrize(
    ("tool", "told"),
    [
        ("crash", "the MCP server flaky stopped during the call"),
        ("hang", f"the tool did not answer within {TOOL_TIMEOUT:g} s"),
        ("freeze", f"the tool did not answer within {TOOL_TIMEOUT:g} s"),
    ],
    ids=["dies-mid-call", "hangs", "freezes"],
)
async def test_a_tool_server_that_fails_mid_call(tmp_path: Path, tool: str, told: str) -> None:
    server = flaky(tmp_path) | {"timeout": TOOL_TIMEOUT}
    config = write_mcp_config(tmp_path, {"flaky": server})
    async with world(tmp_path, MCP_CONFIG=config) as w:
        await wait_until(lambda: server_status(w, "flaky").connected, "the server's tools")
        await allow_tools(w, [f"flaky.{tool}"])
        w.ollama.script_tools([[(f"flaky.{tool}", {})]], final=f"It said: {{tool:flaky.{tool}}}")
        question = f"Use {tool}."
        messages = await finished(await ask(w, question), timeout=WAIT)

        [result] = last_tool_results(w)
        assert told in result["content"], result
        assert pages_without_footer(messages) == [f"It said: {result['content']}"]
        assert footer_of(messages).endswith(f"🔧 flaky.{tool}")

        w.ollama.clear_tool_scripts()
        await assert_keeps_serving(w)
        await assert_stored(w, answered=[question, NEXT_QUESTION])
