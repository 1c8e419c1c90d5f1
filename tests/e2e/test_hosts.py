"""Several Ollama hosts end to end: /model list names them, /ask moves to another host when
one fails before the first token (a status line, one answer, one stored turn) or goes away
midway (the half answer replaced), /model pull to one host chosen from the suggestions."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from tests.bot.core.hosts.conftest import only, questions
from tests.e2e.conftest import World, stored_messages, world
from tests.e2e.test_ask import ask, finished
from tests.e2e.test_models import embed_of
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

PULLABLE = {"mistral:7b": EmulatedModel("mistral:7b", size=4_100_000_000)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def two_hosts(tmp_path: Path) -> AsyncIterator[tuple[World, OllamaEmulator]]:
    """The world's emulator (every default model) and a second one (qwen3 only), both in
    OLLAMA_HOSTS (which OLLAMA_HOST gives way to)."""
    port = free_port()
    async with OllamaEmulator(only("qwen3"), pullable=PULLABLE) as second:
        hosts = f"http://127.0.0.1:{port}*2,{second.url}*2"
        async with world(
            tmp_path, ollama_options={"port": port, "pullable": PULLABLE}, OLLAMA_HOSTS=hosts
        ) as w:
            yield w, second


def short(url: str) -> str:
    return url.removeprefix("http://")


async def test_model_list_names_the_hosts_of_each_model(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (w, second):
        rec = await w.discord.invoke_slash(
            "model", subcommand="list", user_id=w.alice.id, **w.where
        )
        await rec.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
        embed = embed_of(rec)
    lines = embed["description"].splitlines()
    first, other = short(w.ollama.url), short(second.url)
    assert embed["title"] == "Models on the servers"
    assert f"▶️ **llama3.2:latest** 2.0 GB · 3.2B · Q4_K_M · on {first}" in lines
    assert f"**qwen3:latest** 5.2 GB · 8.2B · Q4_K_M · on {first}, {other}" in lines


async def test_ask_moves_to_another_host_with_a_status_line(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (w, second):
        w.ollama.fail_next(1, status=503, error="server busy, please try again.")
        second.stall_before_first_token(2.0)  # long enough to see the status line
        second.set_reply("From the other server.")
        rec = await ask(w, "Anyone?", model="qwen3")
        messages = await finished(rec)
        stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert messages[0].content.startswith("From the other server.")
    assert (questions(w.ollama), questions(second)) == (["Anyone?"], ["Anyone?"])
    assert [m["content"] for m in stored] == ["Anyone?", "From the other server."]
    assert rec.original is not None
    statuses = [text for _, text in rec.original.edits]
    assert any("🔀" in s and "Asking another server" in s for s in statuses), statuses


async def test_an_answer_whose_host_goes_away_midway_is_replaced_by_another(
    tmp_path: Path,
) -> None:
    """The first server's half answer was on screen; the reply ends with the other's whole
    answer only, after a status line, and one turn is stored."""
    async with two_hosts(tmp_path) as (w, second):
        w.ollama.set_reply("Alpha beta gamma delta epsilon zeta eta theta.")
        w.ollama.tokens_per_second = 4  # slow enough for the half answer to be shown
        w.ollama.set_thinking("Hm.")  # qwen3 thinks first: one token
        w.ollama.drop_mid_stream(after_tokens=8)
        second.stall_before_first_token(1.5)  # long enough to see the status line
        second.set_reply("From the other server.")
        rec = await ask(w, "Anyone?", model="qwen3")
        messages = await finished(rec)
        stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert len(messages) == 1
    assert messages[0].content.startswith("From the other server.")
    assert "Alpha" not in messages[0].content
    assert [m["content"] for m in stored] == ["Anyone?", "From the other server."]
    assert rec.original is not None
    statuses = [text for _, text in rec.original.edits]
    assert any(s.startswith("Alpha") for s in statuses), statuses  # it was shown
    assert any("Answering again on another server" in s for s in statuses), statuses


async def test_pull_to_one_host_chosen_from_the_suggestions(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as (w, second):
        rec = await w.discord.invoke_autocomplete(
            "model",
            subcommand="pull",
            user_id=w.admin.id,
            **w.where,
            focused="host",
            value=str(second.url.rsplit(":", 1)[1]),
            options={"name": "mistral:7b"},
        )
        await rec.wait_done(lambda r: r.autocomplete_choices is not None)
        assert rec.autocomplete_choices == [{"name": short(second.url), "value": second.url}]
        rec = await w.discord.invoke_slash(
            "model",
            subcommand="pull",
            user_id=w.admin.id,
            **w.where,
            options={"name": "mistral:7b", "host": second.url},
        )
        await rec.wait_done(lambda r: r.original is not None and "ready" in r.original.content)
        assert ("mistral:7b" in w.ollama.models, "mistral:7b" in second.models) == (False, True)
