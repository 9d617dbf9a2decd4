"""Per-connection state: one recognizer, fed through the shared micro-batcher."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from typing import Optional

import numpy as np

from .batcher import MicroBatcher
from .engine import Engine
from .metrics import Metrics
from .options import StreamOptions

log = logging.getLogger(__name__)


class AudioFormatError(ValueError):
    """An audio message that does not match the stream's declared encoding."""


class InferenceError(RuntimeError):
    """The model failed on one of this stream's windows: the stream cannot go on."""


def decode_pcm(data: bytes, options: StreamOptions) -> np.ndarray:
    """Little-endian PCM bytes -> int16 or float32 samples; AudioFormatError names the problem."""
    size = options.bytes_per_sample
    if len(data) % size:
        raise AudioFormatError(f"audio message of {len(data)} bytes is not a whole number of "
                               f"{options.encoding} samples ({size} bytes each)")
    if options.encoding == "pcm_s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    audio = np.frombuffer(data, dtype="<f4").astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise AudioFormatError("pcm_f32le audio contains NaN or infinite samples")
    return audio


class RecognitionSession:
    """One stream's recognizer plus bookkeeping; created in the connection handler, never shared."""

    def __init__(self, session_id: str, engine: Engine, batcher: MicroBatcher, metrics: Metrics,
                 options: StreamOptions):
        self.id = session_id
        self.options = options
        self.recognizer = engine.create(options)  # ValueError for a bad rate or option
        self.batcher = batcher
        self.metrics = metrics
        self.audio_seconds = 0.0
        self.samples = 0  # input samples received (at the client's sample rate)

    async def feed(self, data: bytes) -> list:
        """Recognise one audio message; returns the events it produced, in order."""
        audio = decode_pcm(data, self.options)
        seconds = audio.size / self.options.sample_rate
        self.samples += audio.size
        self.audio_seconds += seconds
        self.metrics.audio_seconds += seconds
        # decoding (a beam search can take a while) runs on a worker thread, never on the event
        # loop: push() and end() may finish an utterance, complete() decodes every chunk
        events = list(await asyncio.to_thread(self.recognizer.push, audio))
        return events + await self._run_jobs()

    async def end(self) -> list:
        """End of stream: the last partial and final results."""
        events = list(await asyncio.to_thread(self.recognizer.end))
        return events + await self._run_jobs()

    def reset(self) -> None:
        """Start a new stream on the same connection (times restart at zero)."""
        self.recognizer.reset()

    async def _run_jobs(self) -> list:
        events: list = []
        try:
            # next_job() runs the conv feature encoder: on the worker thread, not on the event loop
            while (job := await self.batcher.call(self.recognizer.next_job)) is not None:
                logits = await self.batcher.submit(job)
                events.extend(await asyncio.to_thread(self.recognizer.complete, job, logits))
        except Exception as exc:  # noqa: BLE001 - any model failure ends this stream, not the server
            log.error("%s: recognition failed: %r", self.id, exc)
            raise InferenceError(f"recognition failed: {type(exc).__name__}") from exc
        return events


class Closing(enum.Enum):
    """Why a session stops reading: each maps to a close code in the protocols."""

    IDLE = "idle"
    TIME_LIMIT = "time_limit"
    SHUTDOWN = "shutdown"


class Channel:
    """Receiving side of a connection with idle / total timeouts and server shutdown.

    `receive()` returns the next message, or a `Closing` reason when the session must end;
    a closed connection raises websockets' ConnectionClosed as usual.
    """

    def __init__(self, websocket, idle_timeout: float, session_timeout: float, shutdown: asyncio.Event,
                 max_bytes: Optional[int] = None):
        self.websocket = websocket
        self.max_bytes = max_bytes  # a longer message closes the connection with 1009, as websockets does
        self.idle_timeout = idle_timeout
        self.deadline = time.monotonic() + session_timeout
        self.shutdown = shutdown
        self._shutdown_wait: Optional[asyncio.Task] = None

    async def receive(self):
        """The next message (str or bytes), or a Closing reason."""
        if self.shutdown.is_set():
            return Closing.SHUTDOWN
        if self._shutdown_wait is None:
            self._shutdown_wait = asyncio.ensure_future(self.shutdown.wait())
        left = self.deadline - time.monotonic()
        if left <= 0:
            return Closing.TIME_LIMIT
        timeout = min(self.idle_timeout, left) if self.idle_timeout > 0 else left
        recv = asyncio.ensure_future(self.websocket.recv())
        done, _ = await asyncio.wait({recv, self._shutdown_wait}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if recv in done:
            return await self._checked(recv.result())
        recv.cancel()  # safe in websockets: no message is lost
        try:
            await recv
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - only unblocking it
            pass
        if self.shutdown.is_set():
            return Closing.SHUTDOWN
        return Closing.TIME_LIMIT if time.monotonic() >= self.deadline else Closing.IDLE

    async def _checked(self, message):
        if self.max_bytes is not None and len(message) > self.max_bytes:
            from websockets.exceptions import ConnectionClosed
            from websockets.frames import Close

            await close_draining(self.websocket, 1009, f"message of {len(message)} bytes is too big")
            raise ConnectionClosed(None, Close(1009, "message too big"))
        return message

    def close(self) -> None:
        """Drop the shutdown waiter."""
        if self._shutdown_wait is not None:
            self._shutdown_wait.cancel()


async def discard_incoming(websocket) -> None:
    """Read and drop whatever the client still sends until the connection is closed. Unread
    messages keep websockets' receive flow control paused, and then the client's close frame goes
    unseen until the close timeout (5 s) runs out."""
    try:
        async for _ in websocket:
            pass
    except Exception:  # noqa: BLE001 - ConnectionClosed or anything else: only draining
        pass


def close_reason(text: str, limit: int = 123) -> str:
    """`text` cut to a close frame's reason limit (123 bytes of UTF-8, not characters)."""
    return text.encode()[:limit].decode(errors="ignore")


async def close_draining(websocket, code: int, reason: str) -> None:
    """Close with `code` (reason cut to fit), discarding messages the client still pipelines meanwhile."""
    drain = asyncio.ensure_future(discard_incoming(websocket))
    try:
        await websocket.close(code, close_reason(reason))
    finally:
        drain.cancel()


async def flush_then_close(outbox, websocket, code: int, reason: str) -> None:
    """Send what is queued, then the close frame (nothing if the client is gone or stopped reading)."""
    from websockets.exceptions import ConnectionClosed

    from .outbox import ClientGone

    try:
        await outbox.flush()
    except (ConnectionClosed, ClientGone):
        return
    await close_draining(websocket, code, reason)


def session_ids():
    """Iterator of short session ids, one counter per server."""
    return (f"s{n}" for n in itertools.count(1))
