"""Prometheus text exposition (format 0.0.4), hand-written: one `Metrics` object per server."""

from __future__ import annotations

import bisect
import dataclasses
from typing import Callable

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclasses.dataclass
class Histogram:
    """Cumulative-bucket histogram as Prometheus expects it."""

    name: str
    help: str
    buckets: tuple
    counts: list = dataclasses.field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self):
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        """Count one observation."""
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        """Exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.total:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class Metrics:
    """Counters and gauges of one server; `render` writes them for /metrics."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0, queue_wait: Callable[[], float] = lambda: 0.0):
        self.queue_depth = queue_depth
        self.queue_wait = queue_wait
        self.rejected_busy_total = 0
        self.active_sessions = 0
        self.sessions_total = 0
        self.rejected_total = 0
        self.audio_seconds = 0.0
        self.compute_seconds = 0.0
        self.batches_total = 0
        self.dropped_partials_total = 0
        self.batch_size = Histogram("xlsr_live_batch_size", "Windows per model forward pass.", BATCH_BUCKETS)
        self.partial_latency = Histogram(
            "xlsr_live_partial_latency_seconds",
            "From receiving an audio message to sending the partial it produced.", LATENCY_BUCKETS)

    def observe_batch(self, size: int, compute_seconds: float) -> None:
        """Count one forward pass."""
        self.batches_total += 1
        self.compute_seconds += compute_seconds
        self.batch_size.observe(size)

    def count_dropped_partials(self, count: int) -> None:
        """Stale partials a slow client never got (outbox.py)."""
        self.dropped_partials_total += count

    @property
    def real_time_factor(self) -> float:
        """Model compute seconds per second of audio received (0 before any audio)."""
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def render(self) -> str:
        """The whole exposition text."""
        lines: list[str] = []

        def scalar(name: str, kind: str, help_: str, value: float) -> None:
            lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value:g}"])

        scalar("xlsr_live_active_sessions", "gauge", "Open recognition sessions.", self.active_sessions)
        scalar("xlsr_live_sessions_total", "counter", "Sessions accepted since start.", self.sessions_total)
        scalar("xlsr_live_rejected_connections_total", "counter",
               "Connections refused (limits, auth, shutdown).", self.rejected_total)
        scalar("xlsr_live_audio_seconds_total", "counter", "Seconds of audio received.", self.audio_seconds)
        scalar("xlsr_live_compute_seconds_total", "counter", "Seconds spent in model forward passes.",
               self.compute_seconds)
        scalar("xlsr_live_real_time_factor", "gauge", "Compute seconds per audio second since start.",
               self.real_time_factor)
        scalar("xlsr_live_batches_total", "counter", "Model forward passes.", self.batches_total)
        scalar("xlsr_live_dropped_partials_total", "counter", "Stale partials dropped for slow readers.",
               self.dropped_partials_total)
        scalar("xlsr_live_queue_depth", "gauge", "Windows waiting for a batch.", self.queue_depth())
        scalar("xlsr_live_queue_wait_seconds", "gauge",
               "Moving average of how long windows wait for the model (admission control).", self.queue_wait())
        scalar("xlsr_live_rejected_busy_total", "counter",
               "Connections refused because the server was behind real time.", self.rejected_busy_total)
        lines.extend(self.batch_size.render())
        lines.extend(self.partial_latency.render())
        return "\n".join(lines) + "\n"
