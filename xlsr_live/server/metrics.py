"""Server metrics for /metrics, exposed with prometheus_client: one `Metrics` object and one
CollectorRegistry per server (never the library's global default registry)."""

from __future__ import annotations

import bisect
import dataclasses
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes


@dataclasses.dataclass
class Histogram:
    """Observations counted per bucket (upper bounds `buckets`, plus +Inf), with their sum and count."""

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

    def family(self) -> HistogramMetricFamily:
        """The histogram as prometheus_client's metric family (cumulative buckets)."""
        cumulative, running = [], 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            cumulative.append((str(bound), running))
        cumulative.append(("+Inf", self.count))
        return HistogramMetricFamily(self.name, self.help, buckets=cumulative, sum_value=self.total)


class Metrics:
    """Counters and gauges of one server, read by its own registry's collector when /metrics is scraped."""

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
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

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

    def collect(self) -> Iterator[Metric]:
        """Every series, as prometheus_client's registry asks a custom collector for them."""
        yield GaugeMetricFamily("xlsr_live_active_sessions", "Open recognition sessions.", self.active_sessions)
        yield CounterMetricFamily("xlsr_live_sessions_total", "Sessions accepted since start.", self.sessions_total)
        yield CounterMetricFamily("xlsr_live_rejected_connections_total",
                                  "Connections refused (limits, auth, shutdown).", self.rejected_total)
        yield CounterMetricFamily("xlsr_live_audio_seconds_total", "Seconds of audio received.", self.audio_seconds)
        yield CounterMetricFamily("xlsr_live_compute_seconds_total", "Seconds spent in model forward passes.",
                                  self.compute_seconds)
        yield GaugeMetricFamily("xlsr_live_real_time_factor", "Compute seconds per audio second since start.",
                                self.real_time_factor)
        yield CounterMetricFamily("xlsr_live_batches_total", "Model forward passes.", self.batches_total)
        yield CounterMetricFamily("xlsr_live_dropped_partials_total", "Stale partials dropped for slow readers.",
                                  self.dropped_partials_total)
        yield GaugeMetricFamily("xlsr_live_queue_depth", "Windows waiting for a batch.", self.queue_depth())
        yield GaugeMetricFamily("xlsr_live_queue_wait_seconds",
                                "Moving average of how long windows wait for the model (admission control).",
                                self.queue_wait())
        yield CounterMetricFamily("xlsr_live_rejected_busy_total",
                                  "Connections refused because the server was behind real time.",
                                  self.rejected_busy_total)
        yield self.batch_size.family()
        yield self.partial_latency.family()

    def render(self) -> str:
        """The exposition text of this server's registry (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry).decode()
