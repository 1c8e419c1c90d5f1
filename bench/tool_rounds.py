"""The bot's own time per tool round, beyond the tool and the model.

``OllamaRequestManager`` (with a database, as the bot runs it) asks the Ollama emulator,
which runs in a child process and answers instantly (no token pacing, no load delay). For
each K in ``--rounds``, the model calls an instant tool for K rounds (``script_tools``),
then writes the same scripted final answer; "no tools" offers none. Each answer is asked in
a session reset beforehand (untimed), as in a channel. Printed, p50 / p95 over ``--n``
answers per K (the kinds shuffled in every round):

- wall: query -> the answer complete (what the user sees); "stored" adds storing the turn
  (the group commit waits 50 ms for company before writing);
- bot wall: wall minus the emulator's own time on the answer's /api/chat requests, measured
  in the child from the request's arrival to its response's end;
- CPU: this process's time.process_time() for the whole answer, turn stored;
- per round: (an answer's figure - the K=0 median) / K; the ratio of the medians to K=0.

    .venv/bin/python -m bench.tool_rounds [--rounds 0 1 2 3 4] [--n 50] [--words 60]
        [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.streaming_analysis import percentile
from bench.streaming_child import EmulatorControl, child_process
from bot import OllamaRequestManager
from bot.core.tools.registry import Tool, ToolContext, ToolSet

TOOL = "bench_noop"
PROMPT = "What does the tool say?"
PLAIN = "no tools"
_WORDS = "the tool answered at once and here is what it means for the question you asked"


def model_for(k: int) -> str:
    return f"bench-k{k}"


def final_answer(words: int) -> str:
    vocabulary = _WORDS.split()
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(words)) + "."


# -- the child: a command loop, shared with bench.image_upload --------------------------------
Handle = Callable[..., Awaitable[Any]]


async def serve_commands(conn: Connection, handle: Handle) -> None:
    """Answer ``(command, *args)`` tuples from the parent until "stop" (see EmulatorControl)."""
    loop = asyncio.get_running_loop()
    while True:
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), lambda f=ready: f.done() or f.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())
        try:
            command, *args = conn.recv()
        except EOFError:  # the parent died
            return
        if command == "stop":
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", await handle(command, *args)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def _serve(conn: Connection, ks: list[int], final: str) -> None:
    from aiohttp import web

    from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

    spans: list[tuple[float, float]] = []  # (wall, CPU) seconds of each /api/chat request

    class TimedEmulator(OllamaEmulator):
        @web.middleware
        async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
            wall0, cpu0 = time.monotonic(), time.process_time()
            try:
                return await super()._middleware(request, handler)
            finally:
                if request.path == "/api/chat":
                    spans.append((time.monotonic() - wall0, time.process_time() - cpu0))

    async def main() -> None:
        models = [EmulatedModel(model_for(k), capabilities=("completion", "tools")) for k in ks]
        emu = TimedEmulator(models, tokens_per_second=None, load_delay=0.0)
        emu.set_reply(final)  # "no tools": the same answer, asked without tools
        for k in ks:
            emu.script_tools([[(TOOL, {})]] * k, final, model=model_for(k))
        await emu.start()
        conn.send(emu.url)

        async def handle(command: str) -> Any:
            if command == "spans":  # those since the last call
                taken = list(spans)
                spans.clear()
                return taken
            raise ValueError(f"unknown command {command!r}")

        try:
            await serve_commands(conn, handle)
        finally:
            await emu.stop()

    asyncio.run(main())


# -- the parent: the bot's side -----------------------------------------------------------------
CALLS: Counter[str] = Counter()  # the calls the bench's tool answered, since the last clear


def noop_tool() -> Tool:
    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        CALLS[TOOL] += 1
        return "42"

    return Tool(TOOL, "Answers 42 at once.", {"type": "object", "properties": {}}, handler)


@dataclass(frozen=True)
class Sample:
    wall: float  # query -> answer complete
    stored: float  # query -> the turn stored (the iteration's end)
    cpu: float
    emulator: float  # the emulator's wall time on this answer's chat requests
    emulator_cpu: float
    requests: int

    @property
    def bot_wall(self) -> float:
        return self.wall - self.emulator


async def answer_once(
    manager: OllamaRequestManager,
    ctl: EmulatorControl,
    k: int | None,
    toolset: ToolSet,
    profiler: cProfile.Profile | None = None,
) -> Sample:
    session = f"bench-{k}"
    await manager.create_session(session)  # a channel whose history was reset: untimed
    await ctl.call("spans")
    model = model_for(0 if k is None else k)
    options: dict[str, Any] = {"toolset": toolset} if k is not None else {}
    CALLS.clear()
    gc.collect()
    completed: list[float] = []
    if profiler is not None:
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stream = await manager.query(
        prompt=PROMPT, stream=True, session_id=session, model=model, **options
    )
    stream.completed.add_done_callback(lambda _: completed.append(time.perf_counter()))
    async for _ in stream:
        pass
    stored, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
    result = stream.result
    assert result is not None and result.tools_used == [TOOL] * (k or 0), result
    assert CALLS[TOOL] == (k or 0), CALLS  # the tool itself ran once per round
    spans: list[tuple[float, float]] = await ctl.call("spans")
    assert len(spans) == (k or 0) + 1, spans  # one chat request per round, then the answer
    return Sample(
        completed[0] - wall0,
        stored,
        cpu,
        sum(s[0] for s in spans),
        sum(s[1] for s in spans),
        len(spans),
    )


async def run(
    ks: list[int], n: int, words: int, profile: str | None
) -> tuple[dict[str, list[Sample]], str]:
    """The samples of every kind, and the profile's text if one was asked for."""
    final = final_answer(words)
    results: dict[str, list[Sample]] = {}
    profiled = ""
    with child_process(_serve, ks, final) as ctl, tempfile.TemporaryDirectory() as tmp:
        manager = OllamaRequestManager(
            host=ctl.setup,
            default_model=model_for(0),
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
        )
        await manager.start()
        manager.tools.add(noop_tool())
        toolset = manager.tools.select([TOOL])
        kinds: list[tuple[str, int | None]] = [(PLAIN, None), *((f"K={k}", k) for k in ks)]
        for _ in range(3):  # warm-up: imports, connections, each model's /api/show
            for _, k in kinds:
                await answer_once(manager, ctl, k, toolset)
        gc.collect()
        gc.freeze()  # as the bot does once it is set up
        results = {name: [] for name, _ in kinds}
        for _ in range(n):
            random.shuffle(kinds)  # no kind always runs first or last
            for name, k in kinds:
                results[name].append(await answer_once(manager, ctl, k, toolset))
        if profile:
            profiled = await profile_rounds(manager, ctl, max(ks), toolset, n, profile)
        await manager.close()
    return results, profiled


async def profile_rounds(
    manager: OllamaRequestManager, ctl: EmulatorControl, k: int, toolset: ToolSet, n: int, path: str
) -> str:
    """cProfile (CPU time) ``n`` answers of K=0 and of ``k`` rounds, interleaved; save the
    latter into ``path`` and tell what one round adds, function by function."""
    profilers = {0: cProfile.Profile(time.process_time), k: cProfile.Profile(time.process_time)}
    for _ in range(n):
        for rounds, profiler in profilers.items():
            await answer_once(manager, ctl, rounds, toolset, profiler)
    profilers[k].dump_stats(path)
    base, more = (_by_function(profilers[rounds]) for rounds in (0, k))
    added = {
        name: tuple((more.get(name, (0, 0))[i] - base.get(name, (0, 0))[i]) / n / k for i in (0, 1))
        for name in base.keys() | more.keys()
    }
    lines = [
        f"cProfile (CPU time, profiler's overhead included) of {n} answers with K={k} and "
        f"{n} with K=0 ({path} holds K={k}'s): what one round adds, ms per answer"
    ]
    for title, column in (("inclusive (cumulative)", 1), ("own (tottime)", 0)):
        lines.append(f"  by {title}:")
        # Inclusive: the event loop's frames and ours include everything; name the rest.
        shown = [i for i in added.items() if column == 0 or not i[0].startswith(_WRAPPERS)]
        top = sorted(shown, key=lambda item: -item[1][column])[:PROFILE_ROWS]
        lines += [f"  {times[column] * 1000:8.3f}  {name}" for name, times in top]
    return "\n".join(lines)


PROFILE_ROWS = 25
_WRAPPERS = ("/", "~", "bench/")  # the standard library's frames, built-ins, this file


def _by_function(profiler: cProfile.Profile) -> dict[str, tuple[float, float]]:
    """(own, inclusive) seconds per function, named by package path, line and name."""
    totals: dict[str, tuple[float, float]] = {}
    for (file, line, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        where = file.split("site-packages/")[-1].split("/work/main/")[-1]
        totals[f"{where}:{line}({function})"] = (row[2], row[3])
    return totals


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} / {percentile(values, 95) * 1000:.2f}"


def report(results: dict[str, list[Sample]], ks: list[int], n: int, words: int) -> None:
    print(
        f"{n} answers per kind; final answer {words} words; the emulator in a child process,"
        f" instant; p50 / p95 in ms"
    )
    print(
        f"{'kind':<10}{'wall':>16}{'stored':>16}{'emulator':>16}{'bot wall':>16}{'CPU':>16}"
        f"{'wall ratio':>12}{'CPU ratio':>11}"
    )
    base = results["K=0"] if 0 in ks else results[PLAIN]
    base_wall = statistics.median(s.bot_wall for s in base)
    base_cpu = statistics.median(s.cpu for s in base)
    for name, samples in results.items():
        bot_wall = [s.bot_wall for s in samples]
        cpu = [s.cpu for s in samples]
        print(
            f"{name:<10}{_ms([s.wall for s in samples]):>16}{_ms([s.stored for s in samples]):>16}"
            f"{_ms([s.emulator for s in samples]):>16}{_ms(bot_wall):>16}{_ms(cpu):>16}"
            f"{statistics.median(bot_wall) / base_wall:>12.2f}"
            f"{statistics.median(cpu) / base_cpu:>11.2f}"
        )
    print("ratios: medians of bot wall and CPU against K=0 (tools offered, none called)")
    print("\nper tool round, (answer - K=0 median) / K, p50 / p95 in ms:")
    print(f"{'kind':<10}{'bot wall':>16}{'CPU':>16}{'emulator CPU':>16}")
    for k in (k for k in ks if k > 0):
        samples = results[f"K={k}"]
        wall = [(s.bot_wall - base_wall) / k for s in samples]
        cpu = [(s.cpu - base_cpu) / k for s in samples]
        emu_cpu = [s.emulator_cpu / s.requests for s in samples]
        print(f"{f'K={k}':<10}{_ms(wall):>16}{_ms(cpu):>16}{_ms(emu_cpu):>16}")
    if len([k for k in ks if k >= 0]) >= 2:
        xs = sorted(ks)
        for label, key in (("bot wall", "bot_wall"), ("CPU", "cpu")):
            ys = [statistics.median(getattr(s, key) for s in results[f"K={k}"]) for k in xs]
            slope = statistics.linear_regression(xs, ys).slope
            print(f"least squares over the K medians: {label} {slope * 1000:.2f} ms per round")
    print("('emulator CPU' is the child's CPU per chat request, for scale; it is not ours)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=50, help="answers per kind")
    parser.add_argument("--words", type=int, default=60, help="the final answer's length")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile --n answers of K=0 and of the largest K"
    )
    args = parser.parse_args()
    ks = sorted(set(args.rounds))
    if ks[0] < 0 or ks[-1] > 4:
        parser.error("K goes from 0 to 4 (the bot's MAX_TOOL_ROUNDS default)")
    results, profiled = asyncio.run(run(ks, args.n, args.words, args.profile))
    report(results, ks, args.n, args.words)
    if profiled:
        print(f"\n{profiled}")


if __name__ == "__main__":
    main()
