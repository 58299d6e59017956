"""Token buckets per client and per app, kept in memory only.

Client keys are a salted hash of the address, with a salt made at start-up, so even
this in-memory table holds no IP address.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

MAX_KEYS = 100_000  # buckets kept at once; the idlest half is forgotten beyond this


class TokenBuckets:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate  # tokens per second; 0 turns the limit off
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()
        self._salt = os.urandom(16)

    def key_for_address(self, address: str | None) -> str:
        return hashlib.blake2b((address or "").encode(), key=self._salt, digest_size=12).hexdigest()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 when allowed; otherwise the seconds to wait before `cost` tokens are there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > MAX_KEYS:
                for stale in list(self._buckets)[: MAX_KEYS // 2]:
                    del self._buckets[stale]
            return (min(cost, self.burst) - tokens) / self.rate
