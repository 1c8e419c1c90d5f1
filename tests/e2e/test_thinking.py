"""A reasoning model: its thinking shows as a status, and is neither answered nor stored."""

from __future__ import annotations

from tests.e2e.conftest import World, stored_messages


async def test_thinking_model_shows_status_and_keeps_reasoning_out(w: World) -> None:
    w.ollama.tokens_per_second = 60  # slow enough for the status to be shown
    w.ollama.set_thinking("First I consider the question very carefully indeed.")
    w.ollama.set_reply("The answer is 42.")
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "Meaning?", "model": "qwen3"}
    )
    await rec.wait_done(lambda r: r.original is not None and "tokens" in r.original.content)
    shown = [content for _, content in rec.original.edits]
    assert any("Thinking" in c for c in shown)
    first_answer = next(i for i, c in enumerate(shown) if "The answer" in c)
    assert any("Thinking" in c for c in shown[:first_answer])
    assert all("consider the question" not in c for c in shown)
    chat = [r.json for r in w.ollama.requests if r.path == "/api/chat"]
    assert chat[-1]["think"] is True
    stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert [m["content"] for m in stored] == ["Meaning?", "The answer is 42."]


async def test_non_thinking_model_is_not_asked_to_think(w: World) -> None:
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "hi"}
    )
    await rec.wait_done(lambda r: r.original is not None and "tokens" in r.original.content)
    chat = [r.json for r in w.ollama.requests if r.path == "/api/chat"]
    assert "think" not in chat[-1]
