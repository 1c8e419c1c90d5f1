"""Execution presets (seed 002): named bundles of generation options and a timeout, and the
precedence of option layers that ``/settings show`` explains.

A preset's ``max_tokens`` is Ollama's ``num_predict``. Options chosen explicitly, at the same
level or above, win over a preset's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bot.core.errors import InvalidRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Preset:
    """A named bundle of ``GenerationConfig`` options and the timeout its answers get."""

    name: str
    description: str  # one line, shown as a Discord choice (at most 100 characters)
    options: Mapping[str, Any]  # GenerationConfig field -> value
    timeout: float  # seconds for the whole answer


def _preset(name: str, description: str, temperature: float, top_p: float,
            max_tokens: int, timeout: float) -> Preset:  # fmt: skip
    options = {"temperature": temperature, "top_p": top_p, "num_predict": max_tokens}
    return Preset(name, description, MappingProxyType(options), timeout)


PRESETS: Mapping[str, Preset] = MappingProxyType({
    preset.name: preset
    for preset in (
        _preset("fast", "Fast: short, focused answers (up to 512 tokens)", 0.1, 0.5, 512, 60),
        _preset("creative", "Creative: varied, imaginative answers", 0.9, 0.95, 1024, 120),
        _preset("balanced", "Balanced: the everyday middle ground", 0.7, 0.9, 1024, 120),
        _preset("precise", "Precise: careful, deterministic answers", 0.3, 0.7, 2048, 180),
        _preset("long_form", "Long form: long answers (up to 4096 tokens)", 0.7, 0.9, 4096, 300),
    )
})  # fmt: skip


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (any case); raises InvalidRequestError naming the presets."""
    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise InvalidRequestError(
            f"There is no preset named {name!r}; the presets are: {', '.join(PRESETS)}."
        )
    return preset


def effective_options(
    layers: Sequence[tuple[str, Mapping[str, Any]]],
) -> dict[str, tuple[Any, str]]:
    """Each option's value and the name of the layer it comes from; later layers win.

    ``layers`` go from weakest to strongest, e.g. ``[("default", ...), ("server", ...),
    ("channel preset fast", ...), ("channel", ...), ("preset creative", ...),
    ("this question", ...)]``. None means "not set here", as in ``GenerationConfig``, so it
    never hides a weaker layer's value. Options appear in the order first set.
    """
    effective: dict[str, tuple[Any, str]] = {}
    for layer, options in layers:
        for name, value in options.items():
            if value is not None:
                effective[name] = (value, layer)
    return effective
