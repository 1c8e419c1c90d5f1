"""bench.image_upload still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("sent -> download", "download", "prepare", "-> request sent", "total", "bot CPU")


def test_the_image_upload_benchmark_follows_both_images_to_the_model() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.image_upload", "--reps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # The benchmark checks each question: one download, one chat request whose image is the
    # one the bot prepared, the model's answer shown; otherwise it exits non-zero.
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"photo\.jpg: JPEG 4000x3000, [45],\d{3},\d{3} bytes -> prepared", out), out
    assert re.search(r"screenshot\.png: PNG 2560x1440, 1?,?\d{3},\d{3} bytes -> prepared", out)
    assert out.count("Ollama requests per question: ['/api/chat']") == 2, out
    for phase in PHASES:
        assert len(re.findall(rf"^  {re.escape(phase)} +\d", out, re.M)) == 2, (phase, out)
    assert out.count("prepare_image") == 2
