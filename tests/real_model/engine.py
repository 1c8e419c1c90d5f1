"""The runner behind the real-model server: llama.cpp (llama-cpp-python) on the CPU.

One Engine serves every test of a session, as one Ollama serves many clients: models stay
loaded between requests (and keep their KV cache, which llama.cpp reuses for a shared
prefix), a model is loaded again when a request asks for another context window, as
Ollama reloads a runner for a new num_ctx, and each model answers one request at a time
(Ollama's OLLAMA_NUM_PARALLEL=1). Its methods block: the server calls them in threads.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import llama_cpp
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_grammar import JSON_GBNF

from tests.real_model.decoding import CANCELLED, LENGTH, STOP, StopScanner
from tests.real_model.models import ModelSpec

# Ollama's defaults for what a request leaves out (api/types.go DefaultOptions).
DEFAULTS: Final[Mapping[str, Any]] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repeat_penalty": 1.1,
}
THREADS_ENV: Final = "OLLACORD_REAL_MODEL_THREADS"


@dataclass(frozen=True)
class Sampling:
    """A request's options, as the runner uses them."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    seed: int | None
    num_predict: int | None  # None or negative: until the model stops or the window is full
    stops: tuple[str, ...]

    @classmethod
    def from_options(cls, options: Mapping[str, Any], template_stops: Sequence[str]) -> Sampling:
        given = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        stop = given.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        return cls(
            temperature=float(given["temperature"]),
            top_k=int(given["top_k"]),
            top_p=float(given["top_p"]),
            min_p=float(given["min_p"]),
            repeat_penalty=float(given["repeat_penalty"]),
            seed=given.get("seed"),
            num_predict=given.get("num_predict"),
            stops=tuple(stops) + tuple(template_stops),
        )


@dataclass
class Run:
    """One generation: what the runner did, timed with time.monotonic()."""

    prompt_tokens: int
    started: float
    first_token: float = 0.0  # when the prompt was evaluated and the first token sampled
    ended: float = 0.0
    eval_count: int = 0
    text: str = ""
    done_reason: str = STOP


@dataclass
class Loaded:
    llama: Llama
    window: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires: float = float("inf")  # time.monotonic(); inf while in use


def grammar_for(fmt: object) -> LlamaGrammar | None:
    """`format` as llama.cpp's grammar: "json" any JSON value, a dict a JSON schema."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if isinstance(fmt, dict):
        return LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
    raise ValueError(f"invalid format: {fmt!r}")


class Engine:
    def __init__(self, specs: Sequence[ModelSpec], threads: int | None = None) -> None:
        self.specs = {s.name: s for s in specs}
        self.threads = threads or int(os.environ.get(THREADS_ENV, 0)) or (os.cpu_count() or 1)
        self.metadata: dict[str, dict[str, str]] = {}
        for spec in specs:
            vocab = Llama(str(spec.path), vocab_only=True, verbose=False)
            self.metadata[spec.name] = dict(vocab.metadata)
            vocab.close()
        self._loaded: dict[tuple[str, bool], Loaded] = {}
        self._guard = threading.Lock()

    # -- what the GGUF says ---------------------------------------------------------------
    def architecture(self, name: str) -> str:
        return self.metadata[name]["general.architecture"]

    def trained_context(self, name: str) -> int:
        return int(self.metadata[name][f"{self.architecture(name)}.context_length"])

    def embedding_length(self, name: str) -> int:
        return int(self.metadata[name][f"{self.architecture(name)}.embedding_length"])

    # -- loading --------------------------------------------------------------------------
    def loaded(self) -> dict[str, Loaded]:
        """The chat runners loaded now, by model name."""
        now = time.monotonic()
        return {n: v for (n, embed), v in self._loaded.items() if not embed and v.expires > now}

    def acquire(self, name: str, window: int, *, embedding: bool = False) -> tuple[Loaded, float]:
        """The model's runner for this window, locked for the caller; and the seconds spent
        loading it (0 when it was loaded already)."""
        started = time.monotonic()
        with self._guard:
            key = (name, embedding)
            current = self._loaded.get(key)
            if current is None or current.window != window:
                if current is not None:
                    with current.lock:  # an answer still running on the old window ends first
                        current.llama.close()
                current = Loaded(self._load(name, window, embedding), window)
                self._loaded[key] = current
        current.lock.acquire()
        current.expires = float("inf")
        return current, time.monotonic() - started

    def release(self, loaded: Loaded, keep_alive: float) -> None:
        loaded.expires = time.monotonic() + keep_alive
        loaded.lock.release()

    def unload(self, name: str) -> None:
        with self._guard:
            for key in [k for k in self._loaded if k[0] == name]:
                entry = self._loaded.pop(key)
                with entry.lock:
                    entry.llama.close()

    def _load(self, name: str, window: int, embedding: bool) -> Llama:
        options: dict[str, Any] = {}
        if embedding:
            # Chat models have no pooling of their own: the mean of the tokens' vectors.
            # A text is embedded in one batch: the batch is the whole window.
            options = {
                "embedding": True,
                "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                "n_batch": window,
                "n_ubatch": window,
            }
        return Llama(
            str(self.specs[name].path),
            n_ctx=window,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
            **options,
        )

    # -- running --------------------------------------------------------------------------
    @staticmethod
    def tokenize(llama: Llama, prompt: str) -> list[int]:
        # special=True: the template's markers are the model's special tokens, not text.
        return llama.tokenize(prompt.encode(), add_bos=True, special=True)

    def generate(
        self,
        loaded: Loaded,
        tokens: list[int],
        sampling: Sampling,
        grammar: LlamaGrammar | None,
        cancelled: threading.Event,
        emit: Callable[[str], None],
    ) -> Run:
        """Sample until an end-of-generation token, a stop string, num_predict tokens, a
        full window or the client hanging up; each piece of text goes to ``emit``."""
        llama = loaded.llama
        run = Run(prompt_tokens=len(tokens), started=time.monotonic())
        scanner = StopScanner(sampling.stops)
        # Ollama's seed -1 (or none): a new one each time.
        given = sampling.seed
        seed = given if given is not None and given >= 0 else random.getrandbits(32)
        llama.set_seed(seed)
        limit = sampling.num_predict if sampling.num_predict and sampling.num_predict > 0 else None
        vocab = llama._model.vocab
        pieces: list[str] = []
        for token in llama.generate(
            tokens,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            grammar=grammar,
        ):
            if not run.first_token:
                run.first_token = time.monotonic()
            if cancelled.is_set():
                run.done_reason = CANCELLED
                break
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            run.eval_count += 1
            if text := scanner.feed(llama._model.detokenize([token], special=True)):
                pieces.append(text)
                emit(text)
            if scanner.stopped:
                break
            if (limit is not None and run.eval_count >= limit) or llama.n_tokens >= loaded.window:
                run.done_reason = LENGTH
                break
        if run.done_reason != CANCELLED and (rest := scanner.flush()):
            pieces.append(rest)
            emit(rest)
        run.ended = time.monotonic()
        run.first_token = run.first_token or run.ended
        run.text = "".join(pieces)
        return run

    @staticmethod
    def embed(loaded: Loaded, texts: Sequence[str]) -> list[list[float]]:
        # Ollama's /api/embed returns unit vectors.
        vectors = loaded.llama.embed(list(texts), normalize=True, truncate=False)
        return [list(map(float, v)) for v in vectors]
