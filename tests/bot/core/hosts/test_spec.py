"""OLLAMA_HOSTS: URL*capacity entries, refused clearly when wrong, credentials never shown."""

from __future__ import annotations

import pytest

from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.core.hosts.spec import HostSpec, parse_hosts, redact_url


def test_entries_with_and_without_a_capacity() -> None:
    assert parse_hosts("http://gpu1:11434*4, https://gpu2:11434/ ,http://[::1]:11434*1,") == (
        HostSpec("http://gpu1:11434", 4),
        HostSpec("https://gpu2:11434", None),
        HostSpec("http://[::1]:11434", 1),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://gpu1:11434*0", "must be at least 1"),
        ("http://gpu1:11434*-2", "must be at least 1"),
        ("http://gpu1:11434*four", "whole number, got 'four'"),
        ("http://gpu1:11434*", "whole number, got ''"),
        ("gpu1:11434", "expected an http or https URL, got 'gpu1:11434'"),
        ("ftp://gpu1", "expected an http or https URL"),
        ("http://gpu1:port", "is not a valid URL"),
        ("http://gpu1:11434,http://GPU1:11434/*2", "http://GPU1:11434 is listed twice"),
        ("http://gpu1,http://gpu1:80", "is listed twice"),
        (" , ", "expected at least one URL"),
    ],
)
def test_a_bad_entry_is_named(raw: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_hosts(raw)
    assert expected in str(caught.value)


def test_credentials_stay_out_of_labels_reprs_and_errors() -> None:
    (spec,) = parse_hosts("https://bot:s3cret@gpu1:11434*2")
    assert spec.url == "https://bot:s3cret@gpu1:11434"  # kept for the connection itself
    assert spec.label == "https://gpu1:11434"
    assert "s3cret" not in repr(spec) and "s3cret" not in str(spec)
    assert redact_url("http://gpu1:11434") == "http://gpu1:11434"
    with pytest.raises(ValueError) as caught:
        parse_hosts("https://bot:s3cret@gpu1:11434*0")
    assert "s3cret" not in str(caught.value)


def test_settings_take_ollama_hosts_over_ollama_host() -> None:
    settings = Settings.from_mapping(
        {
            "OLLAMA_HOST": "http://elsewhere:11434",
            "OLLAMA_HOSTS": "http://gpu1:11434*4,http://user:pw@gpu2:11434",
        },
        require_discord=False,
    )
    assert settings.hosts == (
        HostSpec("http://gpu1:11434", 4),
        HostSpec("http://user:pw@gpu2:11434"),
    )
    assert "pw@" not in repr(settings)
    assert settings.manager_options()["hosts"] == settings.hosts


def test_without_ollama_hosts_the_one_host_is_ollama_host() -> None:
    settings = Settings.from_mapping({"OLLAMA_HOST": "http://box:11434/"}, require_discord=False)
    assert settings.hosts == (HostSpec("http://box:11434"),)
    assert settings.manager_options()["hosts"] == ()


def test_a_bad_ollama_hosts_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"OLLAMA_HOSTS": "http://a*0,nope"}, require_discord=False)
    problem = "OLLAMA_HOSTS: the capacity of 'http://a*0' must be at least 1"
    assert caught.value.problems == [problem]
