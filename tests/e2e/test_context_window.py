"""The window the bot asks for, what it sends, and which failures it retries: end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import World, chat_bodies, world
from tests.e2e.test_ask import ask, finished, has_footer
from tests.e2e.test_session import settings
from tests.e2e.test_summarize import finished as summary_finished
from tests.e2e.test_summarize import last_user_text, summarize
from tests.emulators import ollama_answers
from tests.emulators.ollama_server import EmulatedModel

# llama.cpp's refusal of a prompt over its window; a server behind the Ollama API sends it
# as a 500, the status it also uses for a crashed runner.
LLAMA_CPP_OVERFLOW = "Requested tokens (9000) exceed context window of 4096"
RUNNER_CRASH = "model runner has unexpectedly stopped, this may be due to resource limitations"
SAMPLING = ("temperature", "top_p", "top_k", "repeat_penalty")


def meeting_minutes(size: int) -> str:
    lines, i = [], 0
    while sum(map(len, lines)) < size:
        lines.append(f"Item {i}: the committee discussed budget line {i} and agreed to revisit.\n")
        i += 1
    return "".join(lines)


def part_notes(body: dict[str, Any]) -> str:
    prompt = last_user_text(body)
    if "part " in prompt.split("\n", 1)[0]:
        return f"Notes on {prompt.split(' of a ', 1)[0].removeprefix('Here is ')}."
    return "The committee reviewed the budget."


async def test_a_30_kb_file_is_summarized_in_parts_that_fit_the_window(w: World) -> None:
    # llama3.2 was trained for 131,072 tokens, but Ollama runs it with 4096 unless told
    # otherwise, and drops what does not fit without a word: the summary would cover the
    # last few pages only.
    model = w.ollama.models["llama3.2:latest"]
    assert model.context_length == 131_072 and w.ollama.default_num_ctx == 4096
    w.ollama.set_reply(part_notes)
    document = meeting_minutes(30_000)
    attachment = w.discord.add_attachment("minutes.txt", document.encode())
    content = await summary_finished(await summarize(w, attachments=[attachment]))

    assert content.startswith("The committee reviewed the budget.")
    bodies = chat_bodies(w.ollama)
    assert len(bodies) >= 3  # parts, then their combination
    for body in bodies:
        window = body["options"]["num_ctx"]
        assert window == 8192  # DEFAULT_NUM_CTX
        assert ollama_answers.prompt_tokens(body, model) <= window
    assert w.ollama.truncations == []
    pieces = [last_user_text(b).split("\n\n", 1)[1] for b in bodies[:-1]]
    assert "".join(pieces) == document.strip()  # every line went to exactly one part


async def test_summaries_use_the_window_the_channel_chose(w: World) -> None:
    await settings(w, "options", {"num_ctx": 2048})
    model = w.ollama.models["llama3.2:latest"]
    w.ollama.set_reply(part_notes)
    attachment = w.discord.add_attachment("minutes.txt", meeting_minutes(12_000).encode())
    await summary_finished(await summarize(w, attachments=[attachment]))
    bodies = chat_bodies(w.ollama)
    assert len(bodies) >= 3
    for body in bodies:
        assert body["options"]["num_ctx"] == 2048
        assert ollama_answers.prompt_tokens(body, model) <= 2048
    assert w.ollama.truncations == []


async def test_a_context_overflow_is_reported_at_once_not_retried(w: World) -> None:
    w.ollama.fail_next(1, status=500, error=LLAMA_CPP_OVERFLOW)
    rec = await ask(w, "Summarize our whole history")
    await rec.wait_done(lambda r: has_footer(r) or "⚠️" in getattr(r.original, "content", ""))
    await rec.wait_quiet()
    assert rec.original is not None
    assert rec.original.content.startswith("⚠️"), rec.original.content
    assert "context window" in rec.original.content
    assert len(chat_bodies(w.ollama)) == 1  # the same request would only fail again


async def test_a_crashed_runner_is_retried_with_a_status_line(w: World) -> None:
    w.ollama.fail_next(1, status=500, error=RUNNER_CRASH)
    w.ollama.stall_before_first_token(2.0)  # the retry takes a moment: long enough to see
    w.ollama.set_reply("Back again.")
    rec = await ask(w, "Still there?")
    messages = await finished(rec)
    assert messages[0].content.startswith("Back again.")
    assert len(chat_bodies(w.ollama)) == 2
    assert rec.original is not None
    assert any("🔁" in text and "Retrying" in text for _, text in rec.original.edits)


async def test_a_retry_during_the_map_step_of_a_summary_is_shown(tmp_path: Path) -> None:
    small = EmulatedModel("llama3.2:latest", context_length=2048)
    async with world(tmp_path, ollama_options={"models": [small]}) as w:
        w.ollama.set_reply(part_notes)
        w.ollama.fail_next(1, status=500, error=RUNNER_CRASH)  # the first part's request
        w.ollama.stall_before_first_token(2.0)  # its retry
        attachment = w.discord.add_attachment("minutes.txt", meeting_minutes(12_000).encode())
        rec = await summarize(w, attachments=[attachment])
        content = await summary_finished(rec)
        assert content.startswith("The committee reviewed the budget.")
        statuses = [text for _, text in rec.original.edits]
        retry = [s for s in statuses if "🔁" in s]
        assert retry, statuses
        assert retry[0].startswith("📚 Summarizing part 1 of ")
        assert "Retrying" in retry[0]


async def test_only_chosen_options_are_sent(w: World) -> None:
    await finished(await ask(w, "hi"))
    assert chat_bodies(w.ollama)[-1]["options"] == {"num_ctx": 8192}
    await settings(w, "options", {"temperature": 0.3})
    await finished(await ask(w, "again"))
    assert chat_bodies(w.ollama)[-1]["options"] == {"temperature": 0.3, "num_ctx": 8192}
    await finished(await ask(w, "hotter", temperature=1.2))
    options = chat_bodies(w.ollama)[-1]["options"]
    assert options["temperature"] == 1.2
    assert not set(SAMPLING[1:]) & set(options)


def options_field(rec: Any) -> str:
    (embed,) = rec.original.embeds
    return next(f["value"] for f in embed["fields"] if f["name"] == "Options")


async def test_settings_show_says_what_is_sent(w: World) -> None:
    shown = options_field(await settings(w, "show"))
    assert shown.startswith("none chosen: the model's own defaults")
    assert "`num_ctx` 8192 (DEFAULT_NUM_CTX)" in shown
    assert "temperature" not in shown

    # More than llama3.2 was trained for: the window is capped, and says so.
    await settings(w, "options", {"num_ctx": 200_000, "top_k": 20})
    shown = options_field(await settings(w, "show"))
    assert "`top_k=20` (channel)\n`num_ctx=200000` (channel)" in shown
    assert "`num_ctx` 131072 (chosen here, capped at the model's maximum)" in shown
    await finished(await ask(w, "big window"))
    assert chat_bodies(w.ollama)[-1]["options"] == {"top_k": 20, "num_ctx": 131_072}
