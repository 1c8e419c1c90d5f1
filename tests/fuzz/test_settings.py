"""Fuzz: settings parsing (bot/core/config.py Settings.from_mapping, with the host and shard
parsers it uses) and the options and keep-alive a channel stores (/settings options,
/settings keep_alive: bot/core/queries.py checked_settings, validate_keep_alive).

Properties: any mapping of strings parses into Settings or raises ConfigError, never another
exception; its message is one line naming only keys that were given, and never shows a
password written in a URL. A channel's settings change is accepted with every value in its
range, or refused with InvalidRequestError in one line.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.config import Settings
from bot.core.errors import ConfigError, InvalidRequestError
from bot.core.queries import (
    MAX_KEEP_ALIVE_SECONDS,
    OPTION_RANGES,
    checked_settings,
    validate_keep_alive,
)
from bot.core.types import GenerationConfig
from tests.fuzz.support import awkward_text, fuzz

KEYS = [f.name.upper() for f in dataclasses.fields(Settings)]
SECRET = "s3cretPw"
URL_KEYS = {
    "OLLAMA_HOST",
    "OLLAMA_HOSTS",
    "DATABASE_URL",
    "DISCORD_API_BASE",
    "DISCORD_GATEWAY_URL",
}

numberish = st.sampled_from(
    ["0", "-1", "1", "1e400", "nan", "inf", "-inf", "1_000", "０", "١٢", "9" * 5000, "0x10", "  7 "]
)
urlish = st.sampled_from(["http", "https", "ws", "wss", "ftp", "", "sqlite+aiosqlite"]).flatmap(
    lambda scheme: st.builds(
        lambda user, host, port, rest: f"{scheme}://{user}{host}{port}{rest}",
        st.sampled_from(["", f"user:{SECRET}@", f":{SECRET}@", f"u:{SECRET}@["]),
        st.sampled_from(["localhost", "[::1]", "[::1", "h\u00e9.example", "", "a b"]),
        st.sampled_from(["", ":11434", ":99999", ":x", ":-1", ":"]),
        st.sampled_from(["", "/", "/api", "*4", "*0", "*x", ",http://other", "?q=1#f"]),
    )
)
shardish = st.lists(
    st.sampled_from(["0", "1", "3", "0-3", "3-0", "-1", "a", "", " ", "0-99999", "5 \n- 1"]),
    max_size=4,
).map(",".join)
values = (
    numberish | urlish | shardish | awkward_text(60) | st.sampled_from(["true", "OFF", "debug"])
)


@fuzz(300)
@given(env=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=12))
@example(env={"SHARD_IDS": "5 \n- 1", "SHARD_COUNT": "8"})
@example(env={"DISCORD_API_BASE": f"ftp://user:{SECRET}@discord.example"})
@example(env={"DISCORD_GATEWAY_URL": f"http://user:{SECRET}@gateway.example"})
@example(env={"SHARD_COUNT": "100000", "SHARD_IDS": "0-99999"})
@example(env={"OLLAMA_HOST": f"user:{SECRET}@localhost:11434"})
def test_any_environment_parses_or_says_what_is_wrong(env: dict[str, str]) -> None:
    try:
        settings = Settings.from_mapping(env, require_discord=False)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, "the message is not one line"
        assert exc.problems
        for problem in exc.problems:
            key = problem.split(":", 1)[0]
            assert key in env or key == "DISCORD_TOKEN", f"{problem!r} names a key not given"
            if key in URL_KEYS:  # (a URL given as a number is shown: it is not a URL setting)
                assert SECRET not in problem, "a password from a URL is shown"
        return
    # Parsed: each number is in range, and repr never shows the secrets.
    assert settings.max_history_messages >= 1 and settings.default_num_ctx >= 256
    assert settings.request_timeout > 0 and not math.isnan(settings.request_timeout)
    if settings.http_port is not None:
        assert 0 <= settings.http_port <= 65535
    assert all(0 <= shard < (settings.shard_count or 0) for shard in settings.shards)
    for host in settings.hosts:
        assert SECRET not in str(host) and SECRET not in repr(host)


option_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=5)
    | st.lists(st.text(max_size=300), max_size=20)
    | st.dictionaries(st.text(max_size=3), st.none())
)
option_names = st.sampled_from([*GenerationConfig.field_names(), "mirostat", "", "TEMPERATURE"])


@fuzz(300)
@given(
    options=st.dictionaries(option_names, option_values, max_size=8),
    keep_alive=st.none() | awkward_text(50) | st.sampled_from(["5m", "-1", "0", "1h30m", "8761h"]),
)
@example(options={"seed": 2**63}, keep_alive=None)
@example(options={"temperature": float("nan")}, keep_alive="1e9")
def test_channel_settings_are_in_range_or_refused(
    options: dict[str, object], keep_alive: str | None
) -> None:
    """/settings options and /settings keep_alive as the router stores them."""
    try:
        changes = checked_settings({"options": options, "keep_alive": keep_alive})
    except InvalidRequestError as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        return
    for name, value in changes["options"].items():
        assert name in GenerationConfig.field_names()
        if name in OPTION_RANGES and value is not None:
            low, high = OPTION_RANGES[name]
            assert not isinstance(value, bool) and low <= value <= high  # type: ignore[operator]
    if keep_alive is not None:
        stored = changes["keep_alive"]
        assert stored == keep_alive.strip() and stored
        seconds_only = stored.lstrip("-").isdigit()
        assert not seconds_only or int(stored.lstrip("-")) <= MAX_KEEP_ALIVE_SECONDS
    # What is stored can be sent: it builds the options of a request.
    GenerationConfig().merged(changes["options"]).to_options()


@fuzz(200)
@given(
    value=awkward_text(80)
    | st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,3})?(ns|us|ms|s|m|h)?", fullmatch=True)
)
def test_keep_alive_is_a_duration_or_refused(value: str) -> None:
    try:
        stored = validate_keep_alive(value)
    except InvalidRequestError as exc:
        assert "\n" not in str(exc)
        return
    assert stored == value.strip() and len(stored) <= 40
