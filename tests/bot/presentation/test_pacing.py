"""edit_delay: spreading a bucket's requests over its window, keeping one for the final."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.presentation.pacing import FLOOR_INTERVAL, RateLimitInfo, edit_delay


def test_first_edit_goes_at_once() -> None:
    assert edit_delay(None, now=10.0, last_sent=None, final=False) == 0.0


def test_unknown_bucket_still_respects_the_floor() -> None:
    delay = edit_delay(None, now=10.05, last_sent=10.0, final=False)
    assert abs(delay - (FLOOR_INTERVAL - 0.05)) < 1e-9
    assert edit_delay(None, now=10.05, last_sent=10.0, final=True) == 0.0


def test_spreads_remaining_requests_over_the_window() -> None:
    info = RateLimitInfo(limit=5, remaining=4, reset_at=12.0)
    # 4 left over 2 s with one kept for the final: one edit every 2/3 s.
    assert abs(edit_delay(info, now=10.0, last_sent=10.0, final=False) - 2 / 3) < 1e-9


def test_last_request_is_kept_for_the_final() -> None:
    info = RateLimitInfo(limit=5, remaining=1, reset_at=11.5)
    assert edit_delay(info, now=10.0, last_sent=9.0, final=False) == 1.5
    assert edit_delay(info, now=10.0, last_sent=9.9, final=True) == 0.0


def test_exhausted_bucket_waits_for_the_reset_even_for_the_final() -> None:
    info = RateLimitInfo(limit=5, remaining=0, reset_at=11.0)
    assert edit_delay(info, now=10.0, last_sent=9.9, final=True) == 1.0


def test_stretch_slows_edits_but_never_the_final() -> None:
    info = RateLimitInfo(limit=5, remaining=4, reset_at=12.0)
    assert abs(edit_delay(info, now=10.0, last_sent=10.0, final=False, stretch=1.2) - 0.8) < 1e-9
    assert edit_delay(info, now=10.0, last_sent=10.0, final=True, stretch=1.2) == 0.0
    floor = edit_delay(None, now=10.0, last_sent=10.0, final=False, stretch=1.5)
    assert abs(floor - 1.5 * FLOOR_INTERVAL) < 1e-9


def test_stale_info_is_ignored() -> None:
    info = RateLimitInfo(limit=5, remaining=0, reset_at=9.0)
    assert edit_delay(info, now=10.0, last_sent=9.0, final=False) == 0.0


@given(
    limit=st.integers(1, 50),
    window=st.floats(0.1, 10),
    start_used=st.integers(0, 50),
    stretch=st.floats(1.0, 1.5),
)
def test_never_exceeds_the_bucket(
    limit: int, window: float, start_used: int, stretch: float
) -> None:
    """Simulate a fixed-window bucket: following edit_delay never sends into an empty one."""
    now, reset_at = 0.0, window
    remaining = max(0, limit - min(start_used, limit))
    last: float | None = None
    sent = 0
    for _ in range(200):
        if now >= reset_at:
            remaining, reset_at = limit, now + window
        info = RateLimitInfo(limit, remaining, reset_at)
        delay = edit_delay(info, now, last, final=False, stretch=stretch)
        if delay > 0:
            now += delay
            continue
        assert remaining > 0
        remaining -= 1
        sent += 1
        last = now
        if limit > 1:
            assert remaining >= 1 or now >= reset_at  # one always kept for the final
        now += 0.001
    assert sent > 0
