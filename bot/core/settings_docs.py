"""The documentation of every setting: one line each, the one source for .env.example and the
README's settings table. Both are generated (`python scripts/settings_docs.py --write`) and
tests/test_packaging.py keeps them in sync."""

from __future__ import annotations

from dataclasses import dataclass, fields

from bot.core.config import Settings


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One line about a setting; ``empty`` says in words what an empty default means."""

    text: str
    empty: str = "none"


SETTING_DOCS: dict[str, SettingDoc] = {
    "discord_token": SettingDoc(
        "Bot token from the Discord developer portal, required to run the bot; never logged"
    ),
    "ollama_host": SettingDoc("URL of the Ollama server"),
    "ollama_hosts": SettingDoc(
        "Several Ollama servers, comma-separated, each with an optional capacity after `*`: "
        "`http://gpu1:11434*4,http://gpu2:11434*2` (see Several Ollama hosts); when set, "
        "OLLAMA_HOST is not used",
        empty="OLLAMA_HOST alone",
    ),
    "default_model": SettingDoc("Model used where a channel or server has not chosen one"),
    "fallback_models": SettingDoc(
        "Comma-separated models tried in order when the chosen one is missing"
    ),
    "database_url": SettingDoc(
        "Async SQLAlchemy URL of the database; a relative SQLite path starts in the working "
        "directory"
    ),
    "system_prompt": SettingDoc("System prompt for conversations that have none of their own"),
    "max_history_messages": SettingDoc("Most earlier messages sent along with a question"),
    "max_history_tokens": SettingDoc(
        "Approximate token budget for system prompt, history and question", empty="no limit"
    ),
    "default_num_ctx": SettingDoc(
        "Context window in tokens asked of Ollama where a channel has not set num_ctx (capped "
        "at the model's maximum); larger windows cost the server memory"
    ),
    "request_timeout": SettingDoc("Longest an answer may take, in seconds"),
    "first_token_timeout": SettingDoc(
        "Longest wait for the first token, model loading included, in seconds"
    ),
    "stream_idle_timeout": SettingDoc("Longest silence between two tokens, in seconds"),
    "max_retries": SettingDoc("Retries after connection errors, timeouts and 5xx answers"),
    "retry_backoff": SettingDoc("Base of the exponential backoff between retries, in seconds"),
    "keep_alive": SettingDoc(
        "How long Ollama keeps a model loaded after a request (0 unloads at once, -1 forever)"
    ),
    "max_concurrent_requests": SettingDoc(
        "Questions one Ollama server answers at once (each host of OLLAMA_HOSTS without its "
        "own `*N`); more wait in a fair queue"
    ),
    "max_queued_per_member": SettingDoc(
        "Questions one member may have waiting or being answered at once (a fair queue on a "
        "shared GPU); more are refused until one is answered; 0: no cap"
    ),
    "log_level": SettingDoc("DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    "discord_api_base": SettingDoc(
        "A REST proxy in front of Discord, e.g. http://proxy:8080/api/v10", empty="Discord"
    ),
    "discord_gateway_url": SettingDoc(
        "The gateway websocket URL, e.g. ws://proxy:8081/", empty="Discord"
    ),
    "dev_guild_id": SettingDoc(
        "Sync slash commands to this server only, instantly (for trying the bot out)",
        empty="global sync",
    ),
    "mention_chat": SettingDoc(
        "Answer when the bot is mentioned or replied to, like /ask (needs the Message Content "
        "intent)"
    ),
    "message_content_intent": SettingDoc(
        "Request the privileged Message Content intent, needed to summarize channel history"
    ),
    "http_host": SettingDoc(
        "Address the HTTP server (/healthz, stats, metrics) binds to; 127.0.0.1 is this machine "
        "only"
    ),
    "http_port": SettingDoc(
        "Port of the HTTP server; empty turns it off (the Docker image sets 8080)", empty="off"
    ),
    "admin_token": SettingDoc(
        "Bearer token for the HTTP admin routes (pull, cleanup); empty disables them; never logged",
        empty="admin routes off",
    ),
    "shutdown_grace_seconds": SettingDoc(
        "On SIGTERM or SIGINT, how long answers in flight may take to finish before they are "
        "interrupted (with a notice, what was written kept), in seconds"
    ),
    "vision_model": SettingDoc(
        "Model that answers questions with images when the channel's model cannot see them, "
        "e.g. llava or gemma3",
        empty="images need a vision model chosen with /model",
    ),
    "max_tool_rounds": SettingDoc(
        "Most rounds of tool calls in one answer; the model then answers with what it has"
    ),
    "tool_timeout": SettingDoc(
        "Longest a tool call (built-in or MCP) may take before the model is told it timed "
        "out, in seconds"
    ),
    "mcp_config": SettingDoc(
        "Path of a JSON file listing MCP servers in the mcpServers shape (see README)",
        empty="no MCP servers",
    ),
    "embedding_model": SettingDoc(
        "Model that embeds knowledge-base passages and conversation turns for search by "
        "meaning; changing it needs `ollacord kb reembed`"
    ),
    "knowledge_passages": SettingDoc(
        "Passages of the knowledge base sent with a question where a channel has not chosen"
    ),
    "knowledge_min_score": SettingDoc(
        "Cosine similarity a passage needs to be sent as a source (0 to 1; depends on the "
        "embedding model)"
    ),
    "conversation_memory": SettingDoc(
        "Embed stored turns for search by meaning and fold turns leaving the history window "
        "into a running summary (both in the background, with the models above)"
    ),
    "summary_model": SettingDoc(
        "Model that folds turns leaving the history window into the conversation's running "
        "summary",
        empty="the conversation's own model",
    ),
    "shard_count": SettingDoc(
        "Shards of the whole bot, for running it as several processes (Discord requires "
        "sharding past 2,500 servers per shard); every process gets the same value",
        empty="not sharded",
    ),
    "shard_ids": SettingDoc(
        "This process's shards, e.g. 0,1 or 0-3; needs SHARD_COUNT",
        empty="every shard of SHARD_COUNT",
    ),
}

ENV_EXAMPLE_HEADER = """\
# ollacord settings. Copy to .env and fill in DISCORD_TOKEN; everything else has a default.
# Real environment variables override this file.
# Generated from bot/core/config.py (python scripts/settings_docs.py --write): edit it there.
"""


def setting_docs() -> list[tuple[str, str, SettingDoc]]:
    """(ENV_NAME, default as written in .env, doc) for every setting, in declaration order."""
    missing = [f.name for f in fields(Settings) if f.name not in SETTING_DOCS]
    if missing:
        raise LookupError(f"settings without a SETTING_DOCS entry: {', '.join(missing)}")
    return [(f.name.upper(), _env_value(f.default), SETTING_DOCS[f.name]) for f in fields(Settings)]


def _env_value(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def env_example() -> str:
    """The text of .env.example: every setting with a one-line comment and its default."""
    blocks = [ENV_EXAMPLE_HEADER, "\n"]
    for name, value, doc in setting_docs():
        blocks.append(f"# {doc.text}. Default: {value or doc.empty}.\n{name}={value}\n")
    return "".join(blocks)


def settings_table() -> str:
    """The README's settings table (markdown): setting, default, description."""
    rows = ["| setting | default | description |", "|---|---|---|"]
    for name, value, doc in setting_docs():
        default = f"`{value}`" if value else f"*{doc.empty}*"
        text = doc.text.replace("|", r"\|")
        rows.append(f"| `{name}` | {default} | {text}. |")
    return "\n".join(rows) + "\n"
