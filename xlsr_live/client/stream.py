"""Native-protocol client: stream audio blocks to a server, receive its events as dicts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import AsyncIterable, Callable, Iterable, Optional, Union

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

Blocks = Union[Iterable[np.ndarray], AsyncIterable[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """What the client asks the server for, and how it connects."""

    sample_rate: int = 16_000
    encoding: str = "pcm_s16le"
    partials: bool = True
    words: bool = True
    hotwords: tuple[str, ...] = ()
    lm: Optional[bool] = None
    token: Optional[str] = None
    open_timeout: float = 10.0

    def __post_init__(self):
        if self.encoding not in ("pcm_s16le", "pcm_f32le"):
            raise ValueError(f"encoding {self.encoding!r} is not pcm_s16le or pcm_f32le")

    def start_message(self) -> dict:
        """The native protocol's start message."""
        message = {"type": "start", "sample_rate": self.sample_rate, "encoding": self.encoding,
                   "partials": self.partials, "words": self.words}
        if self.hotwords:
            message["hotwords"] = list(self.hotwords)
        if self.lm is not None:
            message["lm"] = self.lm
        return message


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """Everything the server sent, and how it closed."""

    messages: tuple[dict, ...]
    close_code: Optional[int]
    close_reason: str

    def of_type(self, kind: str) -> list[dict]:
        """Messages of one type, e.g. 'final'."""
        return [m for m in self.messages if m.get("type") == kind]


def encode(block: np.ndarray, encoding: str) -> bytes:
    """float32 or int16 samples -> little-endian PCM bytes of `encoding`."""
    block = np.asarray(block)
    if encoding == "pcm_s16le":
        if block.dtype != np.int16:
            block = (np.clip(block, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        return block.astype("<i2", copy=False).tobytes()
    if block.dtype == np.int16:
        block = block.astype(np.float32) / 32768
    return block.astype("<f4", copy=False).tobytes()


async def _iterate(blocks: Blocks):
    if hasattr(blocks, "__aiter__"):
        async for block in blocks:
            yield block
    else:
        for block in blocks:
            yield block


async def receive_all(websocket, sender: asyncio.Task, handle: Callable[[dict], None]) -> None:
    """Pass every message (as a dict) to `handle` until the server closes; then stop `sender`."""
    try:
        async for raw in websocket:
            handle(json.loads(raw))
    except ConnectionClosed:
        pass
    finally:
        sender.cancel()
        try:
            await sender
        except (asyncio.CancelledError, ConnectionClosed):
            pass


async def recognize(url: str, blocks: Blocks, options: ClientOptions = ClientOptions(),
                    on_message: Optional[Callable[[dict], None]] = None) -> StreamResult:
    """Stream `blocks` (mono audio at options.sample_rate) and collect the server's messages.

    Sending and receiving run concurrently, so events arrive while audio is still going out.
    """
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    messages: list[dict] = []
    async with connect(url, additional_headers=headers, open_timeout=options.open_timeout,
                       max_size=None) as websocket:
        await websocket.send(json.dumps(options.start_message()))

        async def send_audio():
            async for block in _iterate(blocks):
                await websocket.send(encode(block, options.encoding))
            await websocket.send(json.dumps({"type": "end"}))

        def handle(message: dict) -> None:
            messages.append(message)
            if on_message is not None:
                on_message(message)

        await receive_all(websocket, asyncio.create_task(send_audio()), handle)
    return StreamResult(tuple(messages), websocket.close_code, websocket.close_reason or "")


async def paced(blocks: Iterable[np.ndarray], sample_rate: int, speed: float = 1.0):
    """Yield blocks no faster than `speed` x real time (speed <= 0: as fast as possible)."""
    started, sent = time.monotonic(), 0.0
    for block in blocks:
        if speed > 0:
            delay = started + sent / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield block
        sent += len(block) / sample_rate


def split_blocks(audio: np.ndarray, sample_rate: int, block_ms: float = 100.0) -> list[np.ndarray]:
    """Cut audio into blocks of `block_ms` (the last may be shorter)."""
    size = max(1, int(sample_rate * block_ms / 1000))
    return [audio[i:i + size] for i in range(0, len(audio), size)]
