"""Opportunistic data echoing (Choi et al., 2019, "Faster neural network training with data echoing"):
when the data workers have no batch ready, train on the last batch again instead of waiting.

On a lent GPU the small demo model trains faster than the data workers augment audio (session 8:
GPU use 4-32 %). `Echoing(batches, max_echo=2)` pulls batches on a background thread; each step takes
a fresh batch if one is ready, else repeats the last one (at most `max_echo` times in a row), else
waits. With data to spare nothing is repeated, so the option costs nothing where data keeps up.
"""
from __future__ import annotations

import queue
import threading
import time

_END = object()


class Echoing:
    """Iterate (batch, fresh) over `batches`: fresh False marks a repeat of the previous batch.

    `waited` accumulates the seconds spent blocked on the data; `echoed` counts the repeats. An
    exception raised by `batches` is raised again here; close() stops the background thread.
    """

    def __init__(self, batches, max_echo: int, depth: int = 2):
        if max_echo < 0:
            raise ValueError(f"max_echo={max_echo!r} must be >= 0")
        self.max_echo = max_echo
        self.waited, self.echoed = 0.0, 0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, args=(batches,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pull(self, batches):
        try:
            for batch in batches:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer
            self._put(exc)

    def __iter__(self):
        last, repeats = None, 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if last is not None and repeats < self.max_echo:
                    repeats += 1
                    self.echoed += 1
                    yield last, False
                    continue
                started = time.perf_counter()
                item = self._queue.get()
                self.waited += time.perf_counter() - started
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            last, repeats = item, 0
            yield item, True

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
