"""Hypothesis profiles of the fuzz tests (see docs/reliability.md, "Fuzz").

The default run is small and derandomized, so CI stays fast and a failure replays exactly;
``pytest tests/fuzz --hypothesis-profile=deep`` runs many more random examples and prints
the ``@reproduce_failure`` blob of a failure. (The profiles are registered here, so the
deep run names tests/fuzz: pytest reads this file before it loads the profile.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Examples per test in the deep run; the default run uses each test's own small count.
DEEP_EXAMPLES = 2000

settings.register_profile(
    "deep",
    max_examples=DEEP_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
