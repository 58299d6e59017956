"""From queued items to the collector: send, retry, spool.

`Recorder` owns the worker: it sends each batch built by `BatchBuilder` with
retries for 408, 429 and 5xx (honouring Retry-After), spools what cannot be
delivered, replays the spool once the collector answers again, and at exit waits a
bounded time before spooling the rest. Imported only when a client is enabled.

After a forget, a batch that still carries the forgotten install id (built before the
forget, waiting for a retry) is dropped instead of sent or spooled, and forget requests
that waited in the spool go out after the next batch the collector takes.

After `stop` (the user turned analytics off) the recorder sends, spools and replays
nothing more in this run, at exit neither.

A batch the collector refuses for good (a 4xx other than 408 and 429, such as
`unknown_app` for an app it does not know) is dropped: neither retried nor spooled. Its
error code is kept in the state file, for `analytics status` and FOOTFALL_DEBUG, until
the collector takes a batch again; with FOOTFALL_DEBUG it is printed once per run.
"""

from __future__ import annotations

import atexit
import time
from typing import Any

from footfall.batch import BatchBuilder, format_time
from footfall.errors import capture_internal_exceptions, debug
from footfall.spool import Spool
from footfall.state import ToolState
from footfall.transport import SendResult, Transport, refusal_sentence
from footfall.worker import BackgroundWorker, Item

MAX_ATTEMPTS = 3  # per batch, while the process runs
BACKOFF_S = (0.5, 1.0)  # before the second and third attempt
MAX_RETRY_WAIT_S = 5.0  # a longer Retry-After spools the batch for a later run instead
FORGET_PATH = "/v1/forget"


def post_forget(transport: Transport, request: dict[str, Any]) -> str:
    """Send one forget request: "sent", "retry" (keep it for later) or "refused" (final)."""
    from http.client import HTTPException

    from footfall.transport import RETRY_STATUSES, HttpTransport

    if not isinstance(transport, HttpTransport):
        return "retry"  # FOOTFALL_DEBUG or a test transport: nothing may leave; keep it
    try:
        status, _, _ = transport.post_json(FORGET_PATH, request)
    except (OSError, ValueError, HTTPException) as exc:
        debug(f"could not reach the collector to forget: {type(exc).__name__}: {exc}")
        return "retry"
    if 200 <= status < 300:
        return "sent"
    if status in RETRY_STATUSES or status >= 500:
        return "retry"
    debug(f"the collector refused a forget request ({status}); it was dropped")
    return "refused"


class Recorder:
    def __init__(
        self,
        builder: BatchBuilder,
        transport: Transport,
        spool: Spool,
        queue_size: int,
        exit_timeout: float,
        state: ToolState | None = None,
    ) -> None:
        self.builder = builder
        self._state = state
        self._reported_codes: set[str] = set()  # refusals already printed in this run
        self._transport = transport
        self._spool = spool
        self._spool_may_hold = True  # a previous run may have left batches
        self._exit_timeout = exit_timeout
        self._reported_drops = 0
        self._forgotten: set[str] = set()  # install ids forgotten in this process
        self._stopped = False  # set by `stop`: the user turned analytics off
        self.worker = BackgroundWorker(self._deliver, queue_size=queue_size)
        atexit.register(self._at_exit)

    def track(self, name: str, props: dict[str, object]) -> None:
        if not self._stopped:
            self.worker.submit((name, time.time(), props))

    def stop(self) -> None:
        """The user turned analytics off: drop what waits and send nothing more in this run.

        A request already on the wire cannot be called back; its retries, its spooling and
        every later batch are dropped, and the worker never builds another batch.
        """
        self._stopped = True
        dropped = self.worker.take_unsent()
        if dropped:
            debug(f"analytics turned off: {len(dropped)} unsent events were dropped")

    def _new_drops(self) -> int:
        dropped = self.worker.dropped - self._reported_drops
        self._reported_drops = self.worker.dropped
        return dropped

    def send(self, batch: dict[str, Any], attempts: int = MAX_ATTEMPTS) -> str:
        """ "delivered", "rejected" (final; dropped) or "failed" (worth trying later)."""
        for attempt in range(attempts):
            if self._stopped:
                debug("analytics turned off: a batch was dropped")
                return "rejected"
            if self._carries_forgotten(batch):
                debug("a batch with a forgotten install id was dropped")
                return "rejected"
            result = self._transport.send(batch)
            if result.delivered:
                self._remember_refusal(None)
                return "delivered"
            if not result.retryable:
                self._refused(result)
                return "rejected"
            if attempt + 1 < attempts:
                wait = result.retry_after if result.retry_after is not None else BACKOFF_S[attempt]
                if wait > MAX_RETRY_WAIT_S:
                    break
                time.sleep(wait)
        return "failed"

    def _refused(self, result: SendResult) -> None:
        code = result.code or "refused"
        if code not in self._reported_codes:
            self._reported_codes.add(code)
            debug(f"{refusal_sentence(code, self.builder.app)} The batch was dropped: not retried, not kept.")
        self._remember_refusal(code)

    def _remember_refusal(self, code: str | None) -> None:
        """Keep the latest final refusal in the state file (None: the collector takes batches)."""
        if self._state is None or self._state.collector_refusal() == code:
            return  # unchanged: the file is not written for every batch
        self._state.update(collector_refusal=None if code is None else {"code": code, "time": format_time(time.time())})

    def _deliver(self, items: list[Item]) -> bool:
        if self._stopped:
            return True  # dropped on purpose, not a failure to report
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
                self._spool.replay_forgets(lambda request: post_forget(self._transport, request) != "retry")
                self._spool_may_hold = not replayed_all or bool(self._spool.pending_forgets())
            return True
        if outcome == "failed" and not self._stopped and not self._carries_forgotten(batch):
            self._spool.save(batch)
            self._spool_may_hold = True
        return self._stopped  # dropped on purpose after `analytics off`: not a failure to report

    def _carries_forgotten(self, batch: dict[str, Any]) -> bool:
        context = batch.get("context")
        return isinstance(context, dict) and context.get("install") in self._forgotten

    def forget(self, install: str, timeout: float) -> bool:
        """Stop sending `install`, then wait up to `timeout` s for the batch in flight.

        True when the worker went idle: nothing with that id can reach the collector after
        this returns, so a forget request sent now covers everything sent before it.
        """
        self._forgotten.add(install)
        self._spool_may_hold = True  # a forget request may be left waiting in the spool
        return self.worker.flush(timeout)

    def unforget(self, install: str) -> None:
        """The forget of `install` could be neither saved nor sent: it keeps being used."""
        self._forgotten.discard(install)

    def flush(self, timeout: float) -> bool:
        return self.worker.flush(timeout)

    def _at_exit(self) -> None:
        with capture_internal_exceptions():
            if self._stopped or self.worker.flush(self._exit_timeout):
                return
            unsent = self.worker.take_unsent()
            batch = self.builder.build(unsent, self._new_drops()) if unsent else None
            if batch is not None:
                self._spool.save(batch)
                debug(f"the collector was slow; {len(batch['events'])} events wait in the spool")
