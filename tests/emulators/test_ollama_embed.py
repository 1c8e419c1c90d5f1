"""/api/embed in the Ollama emulator: bag-of-words vectors a test can predict, through the
official client, and what a real 0.12.6 server does with chat models, empty and long input."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence

import httpx
import ollama
import pytest

from tests.emulators import ollama_models as catalogue
from tests.emulators.ollama_server import OllamaEmulator

NOMIC = "nomic-embed-text"
MXBAI = "mxbai-embed-large"
QUESTION = "What is the capital of France?"
PASSAGES = (
    "The cat sat on the mat.",
    "Paris is the capital of France.",
    "Python lists are mutable sequences.",
)
# What hash collisions may add to the cosine of texts without a common word: each word
# spreads over 8 axes, so one collision is worth 1/8.
UNRELATED = 0.25


@pytest.fixture
async def emu() -> AsyncIterator[OllamaEmulator]:
    # Overrides conftest's: mxbai-embed-large and gemma3 are in the extended catalogue only.
    async with OllamaEmulator(catalogue.extended_models()) as server:
        yield server


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


async def vectors(client: ollama.AsyncClient, *texts: str, model: str = NOMIC) -> list[list[float]]:
    return [list(v) for v in (await client.embed(model, list(texts))).embeddings]


async def test_a_question_ranks_the_passage_sharing_its_words_first(
    client: ollama.AsyncClient,
) -> None:
    question, *passages = await vectors(client, QUESTION, *PASSAGES)
    scores = [cosine(question, p) for p in passages]
    assert max(range(len(scores)), key=scores.__getitem__) == 1
    # {capital, france} against {paris, capital, france}: 2 / (sqrt 2 * sqrt 3).
    assert scores[1] == pytest.approx(2 / math.sqrt(6), abs=1e-6)
    assert abs(scores[0]) < UNRELATED and abs(scores[2]) < UNRELATED


async def test_the_cosine_is_that_of_the_word_counts(client: ollama.AsyncClient) -> None:
    cat, cat_cat_dog, dog = await vectors(client, "cat", "cat cat dog", "dog")
    assert cosine(cat, cat_cat_dog) == pytest.approx(2 / math.sqrt(5), abs=1e-6)
    assert cosine(dog, cat_cat_dog) == pytest.approx(1 / math.sqrt(5), abs=1e-6)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (QUESTION, QUESTION),
        ("capital of France", "CAPITAL, france!"),  # case, punctuation and stop words
        ("the cats' bowls", "a cat bowl"),  # a plural's trailing s
        ("France's capital", "capital France"),  # apostrophes go
    ],
)
async def test_texts_with_the_same_words_embed_identically(
    client: ollama.AsyncClient, one: str, other: str
) -> None:
    first, second = await vectors(client, one, other)
    assert cosine(first, second) == pytest.approx(1.0, abs=1e-9)
    assert math.fsum(x * x for x in first) == pytest.approx(1.0, abs=1e-9)


async def test_a_text_without_words_still_gets_a_unit_vector(
    client: ollama.AsyncClient,
) -> None:
    stop_words, punctuation, word = await vectors(client, "What is it?", "?!", "capital")
    for vector in (stop_words, punctuation):
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0, abs=1e-9)
    assert abs(cosine(stop_words, word)) < UNRELATED


async def test_another_model_gives_unrelated_vectors(client: ollama.AsyncClient) -> None:
    nomic = (await client.embed(NOMIC, QUESTION, dimensions=512)).embeddings[0]
    mxbai = (await client.embed(MXBAI, QUESTION, dimensions=512)).embeddings[0]
    assert abs(cosine(nomic, mxbai)) < UNRELATED
    full = await vectors(client, QUESTION, model=MXBAI)
    assert len(full[0]) == 1024
    # A tag is the same model: the same vectors.
    assert await vectors(client, QUESTION, model=f"{NOMIC}:latest") == await vectors(
        client, QUESTION
    )


@pytest.mark.parametrize(("dimensions", "length"), [(16, 16), (767, 767), (768, 768), (0, 768)])
async def test_dimensions_shorten_the_vector_and_keep_it_a_bag_of_words(
    client: ollama.AsyncClient, dimensions: int, length: int
) -> None:
    answer = await client.embed(
        NOMIC, ["capital of France", "France, capital"], dimensions=dimensions
    )
    first, second = answer.embeddings
    assert len(first) == length
    assert math.fsum(x * x for x in first) == pytest.approx(1.0, abs=1e-9)
    assert cosine(first, second) == pytest.approx(1.0, abs=1e-9)


async def test_llama_embeds_on_llama_cpp_but_models_on_ollamas_engine_refuse(
    client: ollama.AsyncClient,
) -> None:
    # llama.cpp's runner embeds with any model; Ollama's own engine (qwen3, gemma3) refuses
    # a model without pooling, after loading it.
    assert len((await vectors(client, "hi", model="llama3.2"))[0]) == 64
    for model in ("qwen3", "gemma3"):
        with pytest.raises(ollama.ResponseError) as caught:
            await client.embed(model, "hi")
        assert (caught.value.status_code, caught.value.error) == (
            500,
            "this model does not support embeddings",
        )
    assert {m.model for m in (await client.ps()).models} >= {"qwen3:latest", "gemma3:latest"}


@pytest.mark.parametrize("given", ["", []])
async def test_no_input_gives_no_vectors_and_loads_the_model(
    client: ollama.AsyncClient, given: str | list[str]
) -> None:
    answer = await client.embed(NOMIC, given)
    assert (answer.model, answer.embeddings, answer.prompt_eval_count) == (NOMIC, [], None)
    assert [m.model for m in (await client.ps()).models] == [f"{NOMIC}:latest"]


async def test_the_input_is_checked_before_the_model(raw: httpx.AsyncClient) -> None:
    bad = await raw.post("/api/embed", json={"model": "nope", "input": ["a", 1]})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})
    missing = await raw.post("/api/embed", json={"model": "nope", "input": "a"})
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'nope' not found"})


async def test_a_text_past_the_window_is_cut_to_it(client: ollama.AsyncClient) -> None:
    # nomic-embed-text: a 2048-token window at 4 characters a token; "omega" lies past it.
    alphas = "alpha " * 2000
    long, short = await vectors(client, alphas + "omega", "alpha")
    assert cosine(long, short) == pytest.approx(1.0, abs=1e-9)
    counted = await client.embed(NOMIC, alphas + "omega")
    assert counted.prompt_eval_count == 2048 - 2  # the BOS and EOS it keeps room for
    # A smaller num_ctx is a smaller window: 98 tokens, 392 characters, 98 cats.
    cats_then_dogs = "cat " * 100 + "dog " * 100
    cut = await client.embed(NOMIC, cats_then_dogs, options={"num_ctx": 100})
    whole = await client.embed(NOMIC, cats_then_dogs)
    cat = (await vectors(client, "cat"))[0]
    assert cosine(cut.embeddings[0], cat) == pytest.approx(1.0, abs=1e-9)
    assert cosine(whole.embeddings[0], cat) == pytest.approx(1 / math.sqrt(2), abs=1e-6)


async def test_without_truncate_a_long_text_is_refused(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await client.embed(NOMIC, "alpha " * 2000, truncate=False)
    assert (caught.value.status_code, caught.value.error) == (
        400,
        "input exceeds maximum context length",
    )
    fits = await client.embed(NOMIC, "alpha " * 100, truncate=False)
    assert fits.prompt_eval_count == 150
