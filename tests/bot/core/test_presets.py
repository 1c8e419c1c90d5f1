"""Execution presets (seed 002's values) and the precedence of option layers."""

from __future__ import annotations

import pytest

from bot.core.errors import InvalidRequestError
from bot.core.presets import PRESETS, effective_options, get_preset
from bot.core.types import GenerationConfig


@pytest.mark.parametrize(
    ("name", "temperature", "top_p", "num_predict", "timeout"),
    [
        ("fast", 0.1, 0.5, 512, 60),
        ("creative", 0.9, 0.95, 1024, 120),
        ("balanced", 0.7, 0.9, 1024, 120),
        ("precise", 0.3, 0.7, 2048, 180),
        ("long_form", 0.7, 0.9, 4096, 300),
    ],
)
def test_seed_values(
    name: str, temperature: float, top_p: float, num_predict: int, timeout: float
) -> None:
    preset = get_preset(name)
    assert preset.name == name
    assert dict(preset.options) == {
        "temperature": temperature, "top_p": top_p, "num_predict": num_predict,
    }  # fmt: skip
    assert preset.timeout == timeout


def test_every_preset_is_usable_as_it_stands() -> None:
    assert list(PRESETS) == ["fast", "creative", "balanced", "precise", "long_form"]
    for preset in PRESETS.values():
        assert set(preset.options) <= set(GenerationConfig.field_names())
        assert GenerationConfig().merged(preset.options).to_options() == dict(preset.options)
        assert 0 < len(preset.description) <= 100 and "\n" not in preset.description
    with pytest.raises(TypeError):
        PRESETS["fast"].options["temperature"] = 2.0  # type: ignore[index]


def test_names_are_case_insensitive() -> None:
    assert get_preset(" Long_Form ") is PRESETS["long_form"]


@pytest.mark.parametrize("name", ["turbo", "", "long-form"])
def test_an_unknown_preset_lists_the_names(name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        get_preset(name)
    message = caught.value.user_message
    assert repr(name) in message
    assert "fast, creative, balanced, precise, long_form" in message


def test_later_layers_win_and_name_their_source() -> None:
    layers = [
        ("default", {"temperature": 0.8, "num_ctx": 4096}),
        ("server", {"top_k": 40}),
        ("channel preset fast", dict(get_preset("fast").options)),
        ("channel", {"temperature": 0.2, "seed": None}),
        ("preset creative", dict(get_preset("creative").options)),
        ("this question", {"num_predict": 100, "stop": ["END"]}),
    ]
    assert effective_options(layers) == {
        "temperature": (0.9, "preset creative"),
        "num_ctx": (4096, "default"),
        "top_k": (40, "server"),
        "top_p": (0.95, "preset creative"),
        "num_predict": (100, "this question"),
        "stop": (["END"], "this question"),
    }


def test_an_unset_option_never_hides_a_weaker_layer() -> None:
    effective = effective_options([("server", {"seed": 7}), ("channel", {"seed": None})])
    assert effective == {"seed": (7, "server")}
    assert effective_options([]) == {}
