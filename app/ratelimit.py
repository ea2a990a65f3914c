"""Per-key rate limit: a token bucket of assessment tasks per API key (MENTAL_R1_RATE_LIMIT_PER_MINUTE).

A bucket holds up to one minute's worth of tasks and refills continuously. A request for n tasks needs n
tokens (at most a full bucket, so that a request larger than the bucket is delayed, not refused forever)
and takes n, possibly leaving the bucket in debt: over time no key gets more than its rate. Buckets are
keyed by the hash of the API key that authenticated the request (one shared bucket when no keys are
configured), so their number is bounded by the configured keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        assert per_minute > 0, "a rate limit of 0 means no limiter"
        self.capacity, self.rate, self.clock = float(per_minute), per_minute / 60.0, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of the last update)

    def take(self, key: str, n: int) -> float:
        """Take `n` tasks from `key`'s bucket. Returns 0.0 when allowed, else the seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        need = min(float(n), self.capacity)
        if tokens < need:
            self._buckets[key] = (tokens, now)
            return (need - tokens) / self.rate
        self._buckets[key] = (tokens - n, now)
        return 0.0


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
