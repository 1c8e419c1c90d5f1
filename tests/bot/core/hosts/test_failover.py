"""A question that fails on a host moves to another host: one answer, one stored turn, a
status event. Before the first token nothing was shown; after it, only the host going away
moves a streamed answer, which starts again there (the event says how much to withdraw)."""

from __future__ import annotations

import ollama
import pytest

from bot.core.errors import OllamaConnectionLostError
from bot.core.events import FallbackEvent, HostSwitchEvent, QueryEvent, RetryEvent
from tests.bot.core.hosts.conftest import host_of, questions, spread_over
from tests.emulators.ollama_server import OllamaEmulator


async def test_a_busy_host_hands_the_question_to_another(database_url: str) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)]) as manager,
    ):
        a.fail_next(status=503, error="server busy, please try again.")
        events: list[QueryEvent] = []
        result = await manager.ask(prompt="hello", session_id="chan", on_event=events.append)
        stored = await manager.store.messages("chan")
        stats = manager.get_statistics()
        reports = {r.host: r for r in manager.host_reports()}
    assert result.content == "Echo: hello"
    assert [m["content"] for m in stored] == ["hello", "Echo: hello"]
    assert questions(a) == ["hello"] and questions(b) == ["hello"]
    switches = [e for e in events if isinstance(e, HostSwitchEvent)]
    assert switches == [HostSwitchEvent("The model server is busy; please try again in a moment.")]
    assert not any(isinstance(e, RetryEvent) for e in events)  # at once, no backoff
    assert (stats["host_switches"], stats["retries"], stats["successful_requests"]) == (1, 0, 1)
    assert (reports[a.url].errors, reports[a.url].answers) == (1, 0)
    assert (reports[b.url].errors, reports[b.url].answers) == (0, 1)


async def test_a_host_that_stopped_listening_is_left_for_another(database_url: str) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)]) as manager,
    ):
        a.refuse_connections()
        events: list[QueryEvent] = []
        stream = manager.stream(prompt="still there?", session_id="chan", on_event=events.append)
        text = "".join([chunk async for chunk in stream])
        stored = await manager.store.messages("chan")
    assert text == "Echo: still there?"
    assert [m["content"] for m in stored] == ["still there?", "Echo: still there?"]
    assert questions(b) == ["still there?"]
    assert [type(e) for e in events if isinstance(e, HostSwitchEvent)] == [HostSwitchEvent]
    assert a.url in next(e for e in events if isinstance(e, HostSwitchEvent)).error


async def test_a_host_that_stalls_before_the_first_token_is_left_for_another(
    database_url: str,
) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)], first_token_timeout=0.3) as manager,
    ):
        a.stall_before_first_token(30)
        result = await manager.ask(prompt="anyone?")
    assert result.content == "Echo: anyone?"
    assert (questions(a), questions(b)) == (["anyone?"], ["anyone?"])


async def test_a_streamed_answer_whose_host_goes_away_starts_again_on_another(
    database_url: str,
) -> None:
    """Part of it was shown: the answer starts again elsewhere, and the event says how much
    of the shown text the new one replaces (the reply withdraws it). One stored turn."""
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)]) as manager,
    ):
        a.set_reply("one two three four five six")
        a.drop_mid_stream(after_tokens=2)
        events: list[QueryEvent] = []
        stream = manager.stream(prompt="go on", session_id="chan", on_event=events.append)
        received = [chunk async for chunk in stream]
        stored = await manager.store.messages("chan")
    [switch] = [e for e in events if isinstance(e, HostSwitchEvent)]
    shown_first = "".join(received)[: switch.withdrawn]
    assert shown_first == "one two"
    assert "".join(received)[switch.withdrawn :] == "Echo: go on"
    assert [m["content"] for m in stored] == ["go on", "Echo: go on"]
    assert (questions(a), questions(b)) == (["go on"], ["go on"])


async def test_with_one_host_a_streamed_answer_that_breaks_stays_broken(
    database_url: str,
) -> None:
    """With nowhere else to go, a visible answer is not restarted (as before hosts)."""
    async with (
        OllamaEmulator() as a,
        spread_over(database_url, [(a, 2)]) as manager,
    ):
        a.set_reply("one two three four five six")
        a.drop_mid_stream(after_tokens=2)
        stream = manager.stream(prompt="go on", session_id="chan")
        received: list[str] = []
        with pytest.raises(OllamaConnectionLostError) as caught:
            async for chunk in stream:
                received.append(chunk)
        stored = await manager.store.messages("chan")
    assert received and caught.value.partial_content == "".join(received)
    assert stored == []


async def test_an_answer_asked_whole_is_restarted_on_another_host(database_url: str) -> None:
    """ask() shows nothing before the end, so a break midway may move it too."""
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)]) as manager,
    ):
        a.drop_mid_stream(after_tokens=2)
        result = await manager.ask(prompt="whole please", session_id="chan")
        stored = await manager.store.messages("chan")
    assert result.content == "Echo: whole please"
    assert [m["content"] for m in stored] == ["whole please", "Echo: whole please"]
    assert (questions(a), questions(b)) == (["whole please"], ["whole please"])


async def test_a_host_that_lost_the_model_sends_the_question_where_it_is(
    database_url: str,
) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)], fallback_models=["qwen3"]) as manager,
    ):
        # Deleted behind the bot's back: its list of a's models still has it.
        remover = ollama.AsyncClient(host=a.url)
        await remover.delete("llama3.2")
        await remover.close()
        events: list[QueryEvent] = []
        result = await manager.ask(prompt="where is it?", on_event=events.append)
        still_placed = host_of(manager, a).has("llama3.2")
    assert result.model == "llama3.2" and result.content == "Echo: where is it?"
    assert not any(isinstance(e, FallbackEvent) for e in events)
    assert questions(b) == ["where is it?"]
    assert not still_placed


async def test_with_every_host_failing_the_question_fails_as_with_one(
    database_url: str,
) -> None:
    async with (
        OllamaEmulator() as a,
        OllamaEmulator() as b,
        spread_over(database_url, [(a, 2), (b, 2)], max_retries=1) as manager,
    ):
        a.fail_next(3, status=500, error="boom")
        b.fail_next(3, status=500, error="boom")
        events: list[QueryEvent] = []
        with pytest.raises(Exception, match="boom"):
            await manager.ask(prompt="doomed", on_event=events.append)
    # Moved once (to the host not tried yet), then retried once there with backoff.
    assert [type(e) for e in events if isinstance(e, HostSwitchEvent | RetryEvent)] == [
        HostSwitchEvent,
        RetryEvent,
    ]
    assert len(questions(a)) + len(questions(b)) == 3
