"""Token buckets per client and per app, kept in memory only.

Client keys are a salted hash of the address, with a salt made at start-up, so even
this in-memory table holds no IP address. An IPv6 client is keyed by its /64: one
host is usually given a whole /64, so keying by the full address would hand it 2**64
fresh buckets. IPv4 clients (and IPv4-mapped IPv6 addresses) are keyed by the full
address.

The table is a `cachetools.TTLCache`: bounded in entries (so in memory), and when full
it evicts the least recently *used* bucket, the idlest client, never a busy one. A
bucket also expires once it has been idle long enough to refill completely: by then
it is indistinguishable from a fresh one, so forgetting it changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import threading
import time

from cachetools import TTLCache

# Buckets kept at once. One entry is a 12-byte key and a (tokens, last refill) tuple,
# about 250 bytes with the cache's bookkeeping, so the table stays under ~25 MB.
MAX_KEYS = 100_000
IPV6_PREFIX_BITS = 64
MIN_IDLE_TTL_S = 1.0  # a bucket is kept at least this long after its last use


def client_network(address: str | None) -> str:
    """The part of an address that names one client: an IPv6 /64, or the whole IPv4 address."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address  # not an address (a test client, a socket path): key by the text itself
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX_BITS), strict=False))
    return str(parsed)


class TokenBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate  # tokens per second; 0 turns the limit off
        self.burst = burst
        # Time for an empty bucket to refill: after that much idleness it is full again.
        refill_s = burst / rate if rate > 0 else MIN_IDLE_TTL_S
        self._buckets: TTLCache[bytes | str, tuple[float, float]] = TTLCache(
            maxsize=max_keys, ttl=max(refill_s, MIN_IDLE_TTL_S), timer=time.monotonic
        )
        self._lock = threading.Lock()
        self._salt = os.urandom(16)

    def key_for_address(self, address: str | None) -> bytes:
        return hashlib.blake2b(client_network(address).encode(), key=self._salt, digest_size=12).digest()

    def size(self) -> int:
        """Buckets held now (not `__len__`: an empty table must still be truthy)."""
        with self._lock:
            return len(self._buckets)

    def holds(self, key: bytes | str) -> bool:
        with self._lock:
            return key in self._buckets

    def take(self, key: bytes | str, cost: float = 1.0) -> float:
        """0 when allowed; otherwise the seconds to wait before `cost` tokens are there.

        A cost above the burst is charged as the burst: such a request passes on a
        full bucket and empties it, rather than being refused for ever.
        """
        if self.rate <= 0:
            return 0.0
        cost = min(cost, self.burst)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)  # setting it marks it the most recently used
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate
