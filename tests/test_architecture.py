"""The layers' import contracts (pyproject.toml, [tool.importlinter]) hold.

docs/architecture.md draws the layers; import-linter checks every import in bot/ and cogs/,
function-level ones included, against the contracts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_broken_arrow_is_caught(tmp_path: Path) -> None:
    # The checker itself must be able to fail: the core does use storage, so a contract that
    # forbids it is reported broken, naming the import.
    config = tmp_path / "contracts.toml"
    config.write_text(
        """
[tool.importlinter]
root_packages = ["bot"]

[[tool.importlinter.contracts]]
name = "core without storage (false on purpose)"
type = "forbidden"
source_modules = ["bot.core"]
forbidden_modules = ["bot.storage"]
"""
    )
    result = lint_imports(str(config))
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "bot.storage" in result.stdout
