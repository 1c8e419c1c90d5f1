"""/model list | info | set | pull end to end, against the Discord and Ollama emulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, chat_bodies, ollama_paths, wait_private_note, world
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, InteractionRecord
from tests.emulators.ollama_server import EmulatedModel


def embed_of(rec: InteractionRecord) -> dict[str, Any]:
    """The one embed the user was shown, in the edited original or a follow-up."""
    shown = [m for m in [rec.original, *rec.followups] if m is not None and not m.deleted]
    embeds = [e for m in shown for e in m.embeds]
    assert len(embeds) == 1, embeds
    return embeds[0]


async def ask(w: World, prompt: str = "hello") -> None:
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)


async def test_list_shows_every_model_with_sizes_and_marks_the_current_one(w: World) -> None:
    rec = await w.discord.invoke_slash("model", subcommand="list", user_id=w.alice.id, **w.where)
    await rec.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
    assert rec.ephemeral
    description = embed_of(rec)["description"]
    lines = description.splitlines()
    assert len(lines) == 3
    assert "▶️ **llama3.2:latest** 2.0 GB · 3.2B · Q4_K_M" in lines
    assert "**qwen3:latest** 5.2 GB · 8.2B · Q4_K_M" in lines
    assert "**nomic-embed-text:latest** 0.3 GB · 137M · F16" in lines
    assert sum("▶️" in line for line in lines) == 1


async def test_list_marks_the_model_the_channel_was_set_to(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="set", user_id=w.admin.id, **w.where, options={"name": "qwen3"}
    )
    await wait_private_note(rec)
    rec = await w.discord.invoke_slash("model", subcommand="list", user_id=w.alice.id, **w.where)
    await rec.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
    marked = [line for line in embed_of(rec)["description"].splitlines() if "▶️" in line]
    assert marked == ["▶️ **qwen3:latest** 5.2 GB · 8.2B · Q4_K_M"]


async def test_info_shows_what_api_show_reports(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="info", user_id=w.alice.id, **w.where, options={"name": "qwen3"}
    )
    await rec.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
    assert rec.ephemeral
    embed = embed_of(rec)
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Family"] == "qwen3"
    assert fields["Parameters"] == "8.2B"
    assert fields["Quantization"] == "Q4_K_M"
    assert fields["Context length"] == "40,960"
    assert "thinking" in fields["Capabilities"]
    assert any(r.path == "/api/show" for r in w.ollama.requests)


async def test_info_of_an_unknown_model_is_a_clear_private_error(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="info", user_id=w.alice.id, **w.where, options={"name": "nope:7b"}
    )
    note = await wait_private_note(rec)
    assert "`nope:7b`" in note and "not available" in note
    # The "thinking…" placeholder was public; it must not linger once the error is shown.
    assert rec.original is None or rec.original.deleted or rec.original.ephemeral


async def test_set_changes_the_channel_model_for_the_next_ask(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="set", user_id=w.admin.id, **w.where, options={"name": "qwen3"}
    )
    note = await wait_private_note(rec)
    assert "`qwen3` is now this channel's model" in note
    await ask(w)
    assert chat_bodies(w.ollama)[-1]["model"].startswith("qwen3")
    other = w.discord.add_channel(w.guild.id, "other")
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.in_channel(other), options={"prompt": "hi"}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    # Only that channel changed.
    assert chat_bodies(w.ollama)[-1]["model"].startswith("llama3.2")


async def test_set_as_server_default_applies_to_every_channel(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model",
        subcommand="set",
        user_id=w.admin.id,
        **w.where,
        options={"name": "qwen3", "server_default": True},
    )
    note = await wait_private_note(rec)
    assert "server's default" in note
    other = w.discord.add_channel(w.guild.id, "other")
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.in_channel(other), options={"prompt": "hi"}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    assert chat_bodies(w.ollama)[-1]["model"].startswith("qwen3")


async def test_set_to_a_model_the_server_lacks_is_refused(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="set", user_id=w.admin.id, **w.where, options={"name": "mistral"}
    )
    note = await wait_private_note(rec)
    assert "no model `mistral`" in note
    await ask(w)
    assert chat_bodies(w.ollama)[-1]["model"].startswith("llama3.2")


async def test_pull_streams_progress_and_the_model_is_then_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one-edit-a-second cadence would let the emulator's instant download finish between
    # two edits; without it every progress line is shown, and a wider edit bucket keeps
    # those edits from waiting on rate limits.
    pullable = {"mistral:7b": EmulatedModel("mistral:7b", size=4_100_000_000)}
    async with world(
        tmp_path, discord_options={"edit_limit": 100}, ollama_options={"pullable": pullable}
    ) as w:
        # load_extension made its own module object: patch the one the bot runs.
        monkeypatch.setattr(w.bot.extensions["cogs.models"], "PULL_EDIT_INTERVAL", 0.0)
        rec = await w.discord.invoke_slash(
            "model",
            subcommand="pull",
            user_id=w.admin.id,
            **w.where,
            options={"name": "mistral:7b"},
        )
        await rec.wait_done(lambda r: r.original is not None and "ready" in r.original.content)
        assert not rec.ephemeral
        history = [content for _, content in rec.original.edits]
        assert any("Pulling `mistral:7b`" in c and "%" in c for c in history), history
        assert any("100%" in c for c in history)
        assert rec.original.content == "✅ `mistral:7b` is ready."
        assert "mistral:7b" in w.ollama.models
        rec = await w.discord.invoke_slash(
            "model", subcommand="list", user_id=w.alice.id, **w.where
        )
        await rec.wait_done(lambda r: any(m.embeds for m in [r.original, *r.followups] if m))
        assert "**mistral:7b** 4.1 GB" in embed_of(rec)["description"]


async def test_pull_of_an_unknown_model_reports_an_error(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "model", subcommand="pull", user_id=w.admin.id, **w.where, options={"name": "nosuch:1b"}
    )
    note = await wait_private_note(rec)
    assert "The pull of `nosuch:1b` failed" in note and "file does not exist" in note
    shown = [m.content for m in [rec.original, *rec.followups] if m is not None and not m.deleted]
    assert not any("is ready" in c for c in shown)
    assert "nosuch:1b" not in w.ollama.models


@pytest.mark.parametrize(
    ("subcommand", "options"),
    [("set", {"name": "qwen3"}), ("pull", {"name": "mistral:7b"})],
)
async def test_a_member_without_manage_server_is_refused(
    w: World, subcommand: str, options: dict[str, str]
) -> None:
    before = len(w.ollama.requests)
    rec = await w.discord.invoke_slash(
        "model",
        subcommand=subcommand,
        user_id=w.alice.id,
        **w.where,
        options=options,
        permissions=DEFAULT_PERMISSIONS,
    )
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    # The check runs before the command body: no deferral, nothing asked of Ollama.
    assert rec.ack_type == 4 and rec.ephemeral
    assert ollama_paths(w.ollama, before) == []
    await ask(w)
    assert chat_bodies(w.ollama)[-1]["model"].startswith("llama3.2")


async def test_name_autocomplete_offers_models_from_the_tags_list(w: World) -> None:
    rec = await w.discord.invoke_autocomplete(
        "model", subcommand="set", user_id=w.admin.id, **w.where, focused="name", value="QW"
    )
    await rec.wait_done(lambda r: r.autocomplete_choices is not None)
    assert rec.autocomplete_choices == [{"name": "qwen3:latest", "value": "qwen3:latest"}]
    rec = await w.discord.invoke_autocomplete(
        "model", subcommand="info", user_id=w.alice.id, **w.where, focused="name", value=""
    )
    await rec.wait_done(lambda r: r.autocomplete_choices is not None)
    names = {c["value"] for c in rec.autocomplete_choices or []}
    assert names == {"llama3.2:latest", "qwen3:latest", "nomic-embed-text:latest"}
    assert any(r.path == "/api/tags" for r in w.ollama.requests)
