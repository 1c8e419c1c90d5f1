"""The stage is opt-in: the default run leaves its tests out and never imports llama_cpp;
`pytest -m real_model` selects them. Checked by collecting in a fresh interpreter (once,
both ways: a Python start-up with the bot's imports costs seconds on a busy machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPLIT = "=== asked for the stage ==="
# Collects the stage as the default run does, says whether llama_cpp got imported on the
# way, then collects it as `pytest -m real_model` does.
COLLECT = f"""
import sys, pytest
args = ["--collect-only", "-q", "-p", "no:cacheprovider", "tests/real_model"]
pytest.main(args)
print("llama_cpp imported:", "llama_cpp" in sys.modules)
print("{SPLIT}")
pytest.main(["-m", "real_model", *args])
"""


def test_the_default_run_leaves_the_stage_out_and_asking_selects_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", COLLECT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    default, asked = done.stdout.split(SPLIT)
    assert "llama_cpp imported: False" in default, done.stdout
    assert "test_bot.py" not in default and "test_protocol.py" not in default, default
    assert "deselected" in default, default
    assert "test_templates.py::" in default, default  # the server's pure parts still run
    assert "test_protocol.py::" in asked and "test_bot.py::" in asked, asked
    assert "test_manager.py::" in asked and "test_templates.py::" not in asked, asked
