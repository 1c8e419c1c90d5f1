"""StopScanner: stop strings across tokens and characters split between tokens."""

from __future__ import annotations

from tests.real_model.decoding import StopScanner


def test_text_that_may_start_a_stop_string_waits_for_the_next_piece() -> None:
    scanner = StopScanner(["<|im_end|>"])
    assert scanner.feed(b"Hello <|im") == "Hello "
    assert scanner.feed(b"_end|> never sent") == ""
    assert scanner.stopped
    assert scanner.flush() == ""


def test_a_false_start_is_released_and_the_end_flushed() -> None:
    scanner = StopScanner(["END"])
    assert scanner.feed(b"a E") == "a "
    assert scanner.feed(b"x") == "Ex"
    assert scanner.feed(b" EN") == " "
    assert scanner.flush() == "EN"
    assert not scanner.stopped


def test_a_character_split_between_tokens_comes_out_whole() -> None:
    scanner = StopScanner([])
    euro = "€".encode()
    assert scanner.feed(euro[:1]) == ""
    assert scanner.feed(euro[1:]) == "€"
    assert scanner.flush() == ""


def test_the_earliest_of_several_stop_strings_wins() -> None:
    scanner = StopScanner(["two", "one"])
    assert scanner.feed(b"zero one two") == "zero "
