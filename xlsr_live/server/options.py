"""Server and per-stream options as frozen dataclasses, validated on construction."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Optional

PROTOCOLS = ("native", "vosk")
MEMORY_SHARE = 0.8  # of the memory available after the model loaded that stream state may take
ENCODINGS = {"pcm_s16le": 2, "pcm_f32le": 4}  # encoding -> bytes per sample


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything `xlsr-live serve` can be told; one instance shared (read-only) by all sessions."""

    host: str = "127.0.0.1"
    port: int = 2700
    protocol: str = "native"
    batching: bool = True
    max_batch: int = 16
    max_wait_ms: float = 10.0
    workers: int = 1  # batches in flight at once, each on its own thread (CPU: one per core, 1 torch thread each)
    max_connections: int = 64
    # admission control: refuse new sessions (503) while windows wait longer than this for the
    # model on average (the server is behind real time); 0 turns it off
    busy_wait_ms: float = 2000.0
    max_connections_per_address: int = 16  # 0: no per-address limit (e.g. behind a proxy)
    max_message_bytes: int = 1 << 20
    receive_queue: int = 4  # unused since uvicorn serves the websockets (its transport reads one message ahead)
    max_queued_messages: int = 64  # undroppable outgoing messages per connection (outbox.py)
    send_timeout_s: float = 30.0  # a client that reads nothing for this long is disconnected (4003)
    idle_timeout_s: float = 30.0
    session_timeout_s: float = 3600.0
    shutdown_grace_s: float = 10.0
    token: Optional[str] = None
    allowed_origins: tuple[str, ...] = ()  # empty: any origin
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    vosk_sample_rate: int = 8000  # vosk-server's default when the client sends no config
    model_name: str = "xlsr-live"  # the id GET /v1/models lists (any requested model name is served by it)
    max_upload_bytes: int = 25 << 20  # POST /v1/audio/transcriptions request body (OpenAI's limit: 25 MB)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is not one of {PROTOCOLS}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is outside 0..65535")
        for name in ("max_batch", "workers", "max_connections", "max_message_bytes", "receive_queue", "max_queued_messages",
                     "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.max_connections_per_address < 0:
            raise ValueError(f"max_connections_per_address={self.max_connections_per_address} must not be negative")
        if self.send_timeout_s <= 0:
            raise ValueError(f"send_timeout_s={self.send_timeout_s} must be positive")
        for name in ("max_wait_ms", "busy_wait_ms", "idle_timeout_s", "session_timeout_s", "shutdown_grace_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must not be negative")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(f"TLS needs both a certificate and a key (cert={self.tls_cert!r}, key={self.tls_key!r})")
        if self.token is not None and not self.token:
            raise ValueError("token '' is empty; leave it unset to disable authentication")


def available_memory_bytes(device: str = "cpu") -> Optional[int]:
    """Memory free for new allocations: CUDA's free bytes on a GPU, else Linux's MemAvailable (None if unknown)."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stream_budget(per_stream_bytes: int, available_bytes: Optional[int], share: float = MEMORY_SHARE) -> Optional[int]:
    """How many streams' state fits in `share` of the available memory (at least 1; None if unknown)."""
    if per_stream_bytes <= 0:
        raise ValueError(f"per_stream_bytes={per_stream_bytes} must be positive")
    if available_bytes is None:
        return None
    return max(1, int(available_bytes * share) // per_stream_bytes)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine ('localhost', 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or '' (all interfaces): assume reachable from outside


def exposure_warning(options: ServerOptions) -> Optional[str]:
    """A warning when the server is reachable from other machines without a token, else None."""
    if options.token is None and not is_loopback(options.host):
        return (f"serving on {options.host or 'all interfaces'!s} without a token: anyone who can reach "
                f"port {options.port} can use this server (set --token or $XLSR_LIVE_TOKEN)")
    return None


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """What one client asked for when it started a stream (native start message or vosk config)."""

    sample_rate: int = 16_000
    encoding: str = "pcm_s16le"
    partials: bool = True
    words: bool = True
    hotwords: tuple[str, ...] = ()
    lm: Optional[bool] = None  # None: the server's default
    language: Optional[str] = None  # MMS checkpoints: the language's adapters; None: the server's

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding {self.encoding!r} is not one of {sorted(ENCODINGS)}")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise ValueError(f"sample_rate {self.sample_rate!r} is not an integer")
        if self.language is not None and not isinstance(self.language, str):
            raise ValueError(f"language {self.language!r} is not a string")
        if not all(isinstance(h, str) and h.strip() for h in self.hotwords):
            raise ValueError(f"hotwords {self.hotwords!r} must be non-empty strings")

    @property
    def bytes_per_sample(self) -> int:
        """Size of one sample of `encoding` in bytes."""
        return ENCODINGS[self.encoding]
