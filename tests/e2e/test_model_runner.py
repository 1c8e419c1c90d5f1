"""/model compare and /model bench end to end: the real bot against the Discord and Ollama
emulators, the runner (bot.core.runner) underneath, benchmark runs kept in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.core.runner.bench import BENCH_PROMPTS
from bot.discord_app.runner_embeds import answer_limit
from tests.e2e.conftest import (
    World,
    chat_bodies,
    open_command_to_everyone,
    wait_private_note,
    world,
)
from tests.emulators.discord_server import InteractionRecord, Message, User
from tests.emulators.ollama_models import EmulatedModel, default_models, vision_model

FIGURE_NAMES = ["Tokens/s", "First token", "Load", "Total"]


def shown(rec: InteractionRecord) -> list[Message]:
    return [m for m in [rec.original, *rec.followups] if m is not None and not m.deleted]


def embeds_of(rec: InteractionRecord) -> list[dict[str, Any]]:
    return [e for m in shown(rec) for e in m.embeds]


async def compare(w: World, prompt: str, *models: str) -> InteractionRecord:
    names = ("first", "second", "third", "fourth")
    options: dict[str, Any] = {"prompt": prompt, **dict(zip(names, models, strict=False))}
    return await w.discord.invoke_slash(
        "model", subcommand="compare", user_id=w.alice.id, **w.where, options=options
    )


async def compared(w: World, prompt: str, *models: str) -> InteractionRecord:
    rec = await compare(w, prompt, *models)
    await rec.wait_done(lambda r: len(embeds_of(r)) == len(models))
    return rec


def figures(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields") or []}


async def test_compare_shows_each_models_answer_side_by_side_with_figures(w: World) -> None:
    w.ollama.set_reply(lambda body: f"{body['model']} says hi")
    prompt = f"Say hi to <@{w.bob.id}> and @everyone"
    rec = await compared(w, prompt, "llama3.2", "qwen3")
    assert not rec.ephemeral
    first, second = embeds_of(rec)
    assert (first["title"], second["title"]) == ("llama3.2", "qwen3")
    assert first["description"] == "llama3.2 says hi"
    assert second["description"] == "qwen3 says hi"
    for embed in (first, second):
        values = figures(embed)
        assert list(values) == FIGURE_NAMES
        assert float(values["Tokens/s"].replace(",", "")) > 0
        for name in FIGURE_NAMES[1:]:
            assert values[name].endswith(" s") and float(values[name][:-2]) >= 0
    (message,) = shown(rec)
    assert prompt in message.content and "2 of 2 answered" in message.content
    assert message.allowed_mentions == {"parse": []}
    assert not message.mentions and not message.attachments
    # The same question went to each model once.
    asked = [(b["model"], b["messages"][-1]["content"]) for b in chat_bodies(w.ollama)]
    assert sorted(asked) == [("llama3.2", prompt), ("qwen3", prompt)]


async def test_a_missing_model_gets_its_own_embed_while_the_others_answer(w: World) -> None:
    rec = await compared(w, "What is 2+2?", "qwen3", "mistral:7b", "llama3.2")
    qwen, mistral, llama = embeds_of(rec)
    assert mistral["title"] == "mistral:7b"
    assert "mistral:7b" in mistral["description"] and "not available" in mistral["description"]
    assert not mistral.get("fields")
    for embed in (qwen, llama):
        assert embed["description"] == "Echo: What is 2+2?"
        assert list(figures(embed)) == FIGURE_NAMES
    assert "2 of 3 answered" in shown(rec)[0].content
    # The missing model was never asked (no fallback answering in its place).
    assert sorted(b["model"] for b in chat_bodies(w.ollama)) == ["llama3.2", "qwen3"]


async def test_a_long_answer_is_cut_and_every_answer_is_attached_in_full(w: World) -> None:
    long_answer = " ".join(f"word{i}" for i in range(1500))  # ~10,000 characters
    w.ollama.set_reply(lambda body: long_answer if "qwen3" in body["model"] else "Short.")
    rec = await compared(w, "Tell me everything", "qwen3", "llama3.2")
    qwen, llama = embeds_of(rec)
    assert len(qwen["description"]) <= answer_limit(2) < len(long_answer)
    assert qwen["description"].startswith("word0 word1")
    assert "attached file" in qwen["description"]
    assert llama["description"] == "Short."
    (message,) = shown(rec)
    (attachment,) = message.attachments
    assert attachment.filename == "comparison.md"
    text = attachment.data.decode()
    assert long_answer in text and "## llama3.2" in text and "Short." in text
    assert "> Tell me everything" in text


async def test_four_long_answers_fit_in_one_message(tmp_path: Path) -> None:
    # Four embeds share Discord's 6,000 characters; the emulator refuses a message past it.
    models = [*default_models(), vision_model(), EmulatedModel("mistral:7b")]
    async with world(tmp_path, ollama_options={"models": models}) as w:
        w.ollama.set_reply(lambda body: f"{body['model']}: " + "lorem ipsum " * 900)
        names = ("llama3.2", "qwen3", "gemma3", "mistral:7b")
        rec = await compared(w, "Go on at length", *names)
        embeds = embeds_of(rec)
        assert [e["title"] for e in embeds] == list(names)
        for name, embed in zip(names, embeds, strict=True):
            assert embed["description"].startswith(f"{name}: lorem ipsum")
            assert len(embed["description"]) <= answer_limit(4)
            assert list(figures(embed)) == FIGURE_NAMES
        (message,) = shown(rec)
        assert message.attachments[0].data.decode().count("lorem ipsum") == 4 * 900
        assert not rec.errors


@pytest.mark.parametrize(
    ("models", "prompt", "expected"),
    [
        (("qwen3", "qwen3:latest"), "hi", "`qwen3:latest` is given twice"),
        (("qwen3", " "), "hi", "at least two different models"),
        (("qwen3", "llama3.2"), "x" * 6001, "too long (6,001 characters; at most 6,000)"),
        (("qwen3", "llama3.2"), "   ", "The question is empty"),
    ],
)
async def test_bad_compare_input_is_refused_privately(
    w: World, models: tuple[str, ...], prompt: str, expected: str
) -> None:
    rec = await compare(w, prompt, *models)
    note = await wait_private_note(rec)
    assert expected in note
    assert rec.ephemeral
    assert chat_bodies(w.ollama) == []


async def bench(w: World, user: User, name: str | None = None) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "model",
        subcommand="bench",
        user_id=user.id,
        **w.where,
        options={"name": name} if name else None,
    )


async def benched(w: World, name: str) -> InteractionRecord:
    rec = await bench(w, w.admin, name)
    await rec.wait_done(lambda r: len(embeds_of(r)) == 2)
    return rec


def table_rows(embed: dict[str, Any]) -> list[str]:
    lines = embed["description"].strip("`\n").splitlines()
    return lines[1:]  # after the header


async def test_bench_by_an_admin_is_kept_and_shown_beside_the_earlier_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path, discord_options={"edit_limit": 100}) as w:
        # load_extension made its own module object: patch the one the bot runs.
        monkeypatch.setattr(w.bot.extensions["cogs.models"], "BENCH_EDIT_INTERVAL", 0.0)
        first = await benched(w, "qwen3")
        progress = [content for _, content in first.original.edits]
        assert [c for c in progress if "prompt" in c] == [
            f"⏱️ Benchmarking `qwen3`: prompt {i}/5…" for i in range(1, 6)
        ]
        await benched(w, "llama3.2")
        rec = await benched(w, "qwen3")
        assert not rec.ephemeral
        summary, table = embeds_of(rec)
        assert summary["title"] == "Benchmark: qwen3:latest"
        assert "5 of 5 answered" in summary["description"]
        values = figures(summary)
        assert list(values) == [f"{n} (avg · median)" for n in FIGURE_NAMES]
        assert all(" · " in v and "–" not in v for v in values.values())
        rows = table_rows(table)
        # This run (marked), the earlier run of the model, then the other model's latest.
        assert rows[0].split()[:2] == ["▶", "qwen3:latest"]
        assert [row.split()[0] for row in rows[1:]] == ["qwen3:latest", "llama3.2:latest"]
        # The earlier run's row has the figures that run showed.
        earlier = figures(embeds_of(first)[0])["Tokens/s (avg · median)"].split(" · ")
        assert rows[1].split()[3:5] == earlier
        kept = await w.bot.manager.benchmarks.kept(f"guild:{w.guild.id}")
        assert [k.model for k in kept] == ["qwen3:latest", "llama3.2:latest"]
        assert kept[0].requested_by == w.admin.id
        assert kept[0].figure("tokens_per_second") is not None
        assert len(kept[0].results["records"]) == 5
        assert "content" not in kept[0].results["records"][0]
        # The fixed prompts, three times over.
        asked = [b["messages"][-1]["content"] for b in chat_bodies(w.ollama)]
        assert asked == [prompt for _, prompt in BENCH_PROMPTS] * 3


async def test_bench_without_a_name_lists_the_kept_runs_privately(w: World) -> None:
    await benched(w, "llama3.2")
    rec = await bench(w, w.admin)
    await rec.wait_done(lambda r: bool(embeds_of(r)))
    assert rec.ephemeral
    (embed,) = embeds_of(rec)
    [row] = table_rows(embed)
    assert row.startswith("llama3.2:latest")


async def test_bench_of_a_missing_model_is_refused_and_nothing_is_kept(w: World) -> None:
    rec = await bench(w, w.admin, "mistral:7b")
    note = await wait_private_note(rec)
    assert "`mistral:7b`" in note and "not available" in note
    assert await w.bot.manager.benchmarks.kept(f"guild:{w.guild.id}") == []


async def test_bench_is_refused_to_a_member_without_manage_server(w: World) -> None:
    open_command_to_everyone(w.discord, "model")
    rec = await bench(w, w.alice, "qwen3")
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    assert chat_bodies(w.ollama) == []
    assert await w.bot.manager.benchmarks.kept(f"guild:{w.guild.id}") == []
