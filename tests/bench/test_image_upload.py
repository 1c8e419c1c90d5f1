"""bench.image_upload still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import re

from tests.bench.runner import run_bench

PHASES = ("sent -> download", "download", "prepare", "-> request sent", "total", "bot CPU")


def test_the_image_upload_benchmark_follows_both_images_to_the_model() -> None:
    # The benchmark checks each question: one download, one chat request whose image is the
    # one the bot prepared, the model's answer shown; otherwise it exits non-zero.
    out = run_bench("image_upload", "--reps", "1", timeout=240)
    assert re.search(r"photo\.jpg: JPEG 4000x3000, [45],\d{3},\d{3} bytes -> prepared", out), out
    assert re.search(r"screenshot\.png: PNG 2560x1440, 1?,?\d{3},\d{3} bytes -> prepared", out)
    assert out.count("Ollama requests per question: ['/api/chat']") == 2, out
    for phase in PHASES:
        assert len(re.findall(rf"^  {re.escape(phase)} +\d", out, re.M)) == 2, (phase, out)
    assert out.count("prepare_image") == 2
