"""The entry points' process settings: one BLAS thread unless the admin chose otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bot.__main__ as bot_main
from bot.ops.process import limit_blas_threads


def test_one_blas_thread_by_default_and_the_admins_choice_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    limit_blas_threads()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "2"


def test_the_bot_entry_point_limits_blas_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here: the settings are refused, exit code 2
    assert bot_main.main() == 2
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
