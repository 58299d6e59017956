"""From queued items to the collector: send, retry, spool.

`Recorder` owns the worker: it sends each batch built by `BatchBuilder` with
retries for 408, 429 and 5xx (honouring Retry-After), spools what cannot be
delivered, replays the spool once the collector answers again, and at exit waits a
bounded time before spooling the rest. Imported only when a client is enabled.
"""

from __future__ import annotations

import atexit
import time
from typing import Any

from footfall.batch import BatchBuilder
from footfall.errors import capture_internal_exceptions, debug
from footfall.spool import Spool
from footfall.transport import Transport
from footfall.worker import BackgroundWorker, Item

MAX_ATTEMPTS = 3  # per batch, while the process runs
BACKOFF_S = (0.5, 1.0)  # before the second and third attempt
MAX_RETRY_WAIT_S = 5.0  # a longer Retry-After spools the batch for a later run instead


class Recorder:
    def __init__(
        self,
        builder: BatchBuilder,
        transport: Transport,
        spool: Spool,
        queue_size: int,
        exit_timeout: float,
    ) -> None:
        self.builder = builder
        self._transport = transport
        self._spool = spool
        self._spool_may_hold = True  # a previous run may have left batches
        self._exit_timeout = exit_timeout
        self._reported_drops = 0
        self.worker = BackgroundWorker(self._deliver, queue_size=queue_size)
        atexit.register(self._at_exit)

    def track(self, name: str, props: dict[str, object]) -> None:
        self.worker.submit((name, time.time(), props))

    def _new_drops(self) -> int:
        dropped = self.worker.dropped - self._reported_drops
        self._reported_drops = self.worker.dropped
        return dropped

    def send(self, batch: dict[str, Any], attempts: int = MAX_ATTEMPTS) -> str:
        """ "delivered", "rejected" (final; dropped) or "failed" (worth trying later)."""
        for attempt in range(attempts):
            result = self._transport.send(batch)
            if result.delivered:
                return "delivered"
            if not result.retryable:
                debug("the collector refused a batch; it was dropped")
                return "rejected"
            if attempt + 1 < attempts:
                wait = result.retry_after if result.retry_after is not None else BACKOFF_S[attempt]
                if wait > MAX_RETRY_WAIT_S:
                    break
                time.sleep(wait)
        return "failed"

    def _deliver(self, items: list[Item]) -> bool:
        batch = self.builder.build(items, self._new_drops())
        if batch is None:
            return True
        outcome = self.send(batch)
        if outcome == "delivered":
            if self._spool_may_hold:
                replayed_all = True

                def send_once(spooled: dict[str, Any]) -> bool:
                    nonlocal replayed_all
                    ok = self.send(spooled, attempts=1) != "failed"
                    replayed_all = replayed_all and ok
                    return ok

                self._spool.replay(send_once)
                self._spool_may_hold = not replayed_all
            return True
        if outcome == "failed":
            self._spool.save(batch)
            self._spool_may_hold = True
        return False

    def flush(self, timeout: float) -> bool:
        return self.worker.flush(timeout)

    def _at_exit(self) -> None:
        with capture_internal_exceptions():
            if self.worker.flush(self._exit_timeout):
                return
            unsent = self.worker.take_unsent()
            batch = self.builder.build(unsent, self._new_drops()) if unsent else None
            if batch is not None:
                self._spool.save(batch)
                debug(f"the collector was slow; {len(batch['events'])} events wait in the spool")
