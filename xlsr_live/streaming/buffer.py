"""A growable sample buffer with absolute indexing: amortised O(1) appends, no np.append."""

from __future__ import annotations

import numpy as np

INITIAL_CAPACITY = 16_000 * 4  # samples (4 s at 16 kHz)


class SampleBuffer:
    """Samples [start, end) of a stream kept in a preallocated array that doubles when full.

    Indices are absolute (sample numbers since the buffer's origin); `discard_before` frees the
    head without shifting indices.
    """

    def __init__(self, start: int = 0, capacity: int = INITIAL_CAPACITY, dtype=np.float32):
        self._data = np.zeros(max(capacity, 1), dtype=dtype)
        self._head = 0  # offset in _data of sample `start`
        self.start = start
        self.end = start

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def nbytes(self) -> int:
        """Bytes of the preallocated array (what the buffer holds, used or not)."""
        return self._data.nbytes

    def append(self, samples: np.ndarray) -> None:
        """Add samples at the end."""
        n = len(samples)
        if n == 0:
            return
        used = self.end - self.start
        if self._head + used + n > len(self._data):
            self._make_room(used + n)
        tail = self._head + used
        self._data[tail:tail + n] = samples
        self.end += n

    def _make_room(self, needed: int) -> None:
        """Move live samples to the front, growing (doubling) the array if still too small."""
        used = self.end - self.start
        capacity = len(self._data)
        while capacity < needed:
            capacity *= 2
        data = self._data if capacity == len(self._data) else np.zeros(capacity, dtype=self._data.dtype)
        data[:used] = self._data[self._head:self._head + used]
        self._data = data
        self._head = 0

    def get(self, start: int, end: int) -> np.ndarray:
        """A copy of samples [start, end); both must lie inside the buffer."""
        if not self.start <= start <= end <= self.end:
            raise IndexError(f"samples [{start}, {end}) outside buffer [{self.start}, {self.end})")
        offset = self._head + start - self.start
        return self._data[offset:offset + end - start].copy()

    def discard_before(self, sample: int) -> None:
        """Forget samples before `sample` (clipped to the buffer)."""
        sample = min(max(sample, self.start), self.end)
        self._head += sample - self.start
        self.start = sample
        if self.start == self.end:
            self._head = 0
