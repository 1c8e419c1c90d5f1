"""The settings every fuzz test runs with, and strategies several of them share."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEEP_PROFILE = "deep"


def fuzz(examples: int) -> settings:
    """``examples`` derandomized examples (the same ones every run, so a CI failure replays
    as is), or the deep profile's many random ones under ``--hypothesis-profile=deep``."""
    if settings.get_current_profile_name() == DEEP_PROFILE:
        return settings(settings.get_profile(DEEP_PROFILE))
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Text a member can type that is hard on software: controls, bidi overrides, zero-width
# characters, combining marks, surrogate-free astral characters, Markdown and mentions.
AWKWARD = [
    "",
    " ",
    "\x00",
    "\n",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u200b",  # ZERO WIDTH SPACE
    "\u200d",  # ZERO WIDTH JOINER
    "\ufeff",  # BYTE ORDER MARK
    "\u0301",  # COMBINING ACUTE ACCENT
    "שלום",
    "مرحبا",
    "👩\u200d👩\u200d👧",
    "\U0001f600",
    "```",
    "~~~",
    "@everyone",
    "<@123>",
    "`",
    "%s",
    "{0}",
    "../../etc/passwd",
]


def awkward_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Unicode text mixed with the awkward pieces above."""
    pieces = st.sampled_from(AWKWARD) | st.text(max_size=20)
    return (
        st.lists(pieces, max_size=max(1, max_size // 10)).map("".join).map(lambda s: s[:max_size])
    )
