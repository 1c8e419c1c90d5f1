"""A circuit breaker per host: a server that stops answering is taken out of rotation and
probed until it answers again.

Closed: questions go to the host. After ``threshold`` connection failures or timeouts in a
row it opens: questions go elsewhere, and the pool probes the host (``/api/version``) after
``cooldown`` seconds, doubling the wait after each failed probe up to ``max_cooldown``. Any
success, a probe's or a question's, closes it. The breaker only keeps this state; the pool
runs the probes, and routing reads ``is_open``.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Three in a row: one refused connection may be a restart in progress, three are an outage.
FAILURE_THRESHOLD = 3
PROBE_COOLDOWN = 2.0
MAX_PROBE_COOLDOWN = 60.0


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = FAILURE_THRESHOLD,
        cooldown: float = PROBE_COOLDOWN,
        max_cooldown: float = MAX_PROBE_COOLDOWN,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self.failures = 0  # in a row
        self.is_open = False
        self.cooldown = cooldown  # before the next probe, while open
        self.opened = 0  # times it opened, for the logs and the figures

    @property
    def state(self) -> str:
        return "open" if self.is_open else "closed"

    def record_failure(self) -> bool:
        """A connection failure or a timeout; True when this one opens the breaker."""
        self.failures += 1
        if self.is_open or self.failures < self.threshold:
            return False
        self.is_open = True
        self.opened += 1
        self.cooldown = self.base_cooldown
        return True

    def record_success(self) -> bool:
        """The host answered; True when this closes an open breaker."""
        self.failures = 0
        if not self.is_open:
            return False
        self.is_open = False
        self.cooldown = self.base_cooldown
        return True

    def probe_failed(self) -> None:
        """The host still does not answer: wait twice as long before the next probe."""
        self.cooldown = min(self.cooldown * 2, self.max_cooldown)
