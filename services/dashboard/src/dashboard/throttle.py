"""The web page's login limiter: failed logins per user and per address (429 once exceeded)."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from dashboard.config import LoginLimits


class LoginThrottle:
    """Failed attempts per key inside a sliding window."""

    def __init__(self, limits: LoginLimits) -> None:
        self._limits = limits
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and now - failures[0] > self._limits.window_s:
            failures.popleft()
        return failures

    def blocked(self, keys: list[str]) -> bool:
        now = time.monotonic()
        return any(len(self._recent(k, now)) >= self._limits.max_failures for k in keys)

    def fail(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)

    def clear(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
