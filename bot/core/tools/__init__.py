"""Tools a model may call: the registry (``registry``), the built-in tools (``builtin``) and
the tools of MCP servers (``mcp_servers``). Part of the core: no discord, no aiohttp."""
