"""Background delivery, in the shape of Sentry's BackgroundWorker.

A lazy daemon thread drains a bounded queue in batches: a tool that records
nothing starts no thread. `submit` never blocks: when the queue is full the item
is dropped and counted. A pid check makes a forked child start its own thread and
queue. `flush` waits a bounded time, and `take_unsent` hands back what is still
waiting, so exit is bounded and nothing is silently lost.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable

from footfall.errors import capture_internal_exceptions

DEFAULT_BATCH_SIZE = 100  # items per request

Item = tuple[str, float, dict[str, object]]  # (event name, time, props)


class BackgroundWorker:
    def __init__(
        self,
        deliver: Callable[[list[Item]], bool],
        queue_size: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._deliver = deliver
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[Item] = queue.Queue(self._queue_size)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._pending = 0  # submitted and not yet handed back by `deliver`
        self._failed = 0  # handed back undelivered since the last flush
        self._in_flight: list[Item] = []
        self.dropped = 0  # refused because the queue was full

    def submit(self, item: Item) -> bool:
        if self._pid != os.getpid():
            self._reset()  # forked: the parent's thread does not exist here
        if self._thread is None:
            self._start()
        with self._lock:
            self._pending += 1  # before the put, so the worker never counts below zero
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self.dropped += 1
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True when everything submitted was delivered."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            delivered = self._failed == 0
            self._failed = 0
            return delivered

    def take_unsent(self) -> list[Item]:
        """Everything not yet delivered: the batch being sent, then the queue.

        What is taken from the queue is no longer pending, so a later `flush` does not wait
        for it; the batch being sent stays pending until the worker is done with it.
        """
        with self._lock:
            unsent = list(self._in_flight)
            self._in_flight = []
        taken = 0
        while True:
            try:
                unsent.append(self._queue.get_nowait())
            except queue.Empty:
                break
            taken += 1
        if taken:
            with self._idle:
                self._pending -= taken
                self._idle.notify_all()
        return unsent

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="footfall.worker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                self._in_flight = batch
            delivered = False
            with capture_internal_exceptions():
                delivered = self._deliver(batch)
            with self._idle:
                self._in_flight = []
                self._pending -= len(batch)
                if not delivered:
                    self._failed += len(batch)
                self._idle.notify_all()
