"""Uploaded bytes become text by evidence (BOM, UTF-8, Windows-1252, detection), or are refused."""

from __future__ import annotations

import codecs
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.text_decoding import NotTextError, decode_text

FRENCH = "Résumé of the café meeting: the naïve plan is dropped, à bientôt."


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co"))))
def test_utf8_text_comes_back_unchanged(text: str) -> None:
    assert decode_text(text.encode("utf-8"), "a.txt") == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co")), min_size=1))
def test_utf16_and_utf32_with_a_byte_order_mark(text: str) -> None:
    assert decode_text(text.encode("utf-16"), "a.txt") == text
    assert decode_text(text.encode("utf-32"), "a.txt") == text


def test_a_utf8_byte_order_mark_is_dropped() -> None:
    assert decode_text(codecs.BOM_UTF8 + FRENCH.encode(), "a.txt") == FRENCH


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (FRENCH, "latin-1"),
        ("Résumé of the café meeting", "latin-1"),  # even length: UTF-16 "decodes" it
        ("Größe: Übergröße, Straße", "latin-1"),
        ("Smart “quotes” – dash, €5", "cp1252"),
        ("Встреча в четверг: обсудили бюджет и сроки проекта.", "cp1251"),
        ("Καλημέρα, η συνάντηση είναι την Πέμπτη το απόγευμα.", "cp1253"),
        # Best effort: the detector needs enough text to tell Japanese from Korean.
        ("会議は木曜日です。よろしくお願いします。", "shift_jis"),
        ("Plain ASCII notes.\r\nWith Windows line ends.\r\n", "ascii"),
    ],
)
def test_legacy_encodings_are_recognised(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding), "notes.txt") == text


def test_utf16_without_a_mark_is_recognised_only_by_evidence() -> None:
    text = "Notes exported by an old editor, in UTF-16 without a byte order mark.\n" * 3
    assert decode_text(text.encode("utf-16-le"), "notes.txt") == text


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
        os.urandom(4096),
        os.urandom(4096).replace(b"\x00", b"\x01"),  # no zero byte to give it away
        bytes(range(1, 32)) * 50,
    ],
)
def test_binary_data_is_refused_with_the_file_named(data: bytes) -> None:
    with pytest.raises(NotTextError, match=r"`blob\.bin` does not look like a text file"):
        decode_text(data, "blob.bin")


def test_empty_is_empty_text() -> None:
    assert decode_text(b"", "empty.txt") == ""
