"""bench.retrieval still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

from tests.bench.runner import run_bench


def test_the_retrieval_benchmark_runs_every_part() -> None:
    # The benchmark checks its answers and exits non-zero on a wrong one: the index's top 5
    # against a full sort, the lists' recall on topical vectors, channel limits, every
    # vector loaded, the ingested passages found, no embedding for unchanged or copied
    # documents, sources in the model's question.
    tiny = ("--passages", "3000", "--queries", "10", "--docs", "2", "--answers", "2")
    out = run_bench("retrieval", *tiny, "--load-reps", "1", timeout=240)
    for kind in ("topical", "random"):
        assert f"1. index, {kind}: 3,000 passages x 768 dimensions" in out, out
    assert out.count("recall@5 of the lists against the exact scan") == 2
    assert "2. load: 3,000 passages" in out
    assert "3. ingestion: 3 documents" in out
    assert "again, unchanged" in out and "/api/embed: 0 calls, 0 texts" in out
    for kind in ("plain", "retrieval, guild:1", "retrieval, guild:2"):
        assert f"   {kind} " in out, kind
