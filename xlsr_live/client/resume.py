"""A native-protocol stream that survives a server going away: it reconnects (through a load
balancer, to another replica) and resends the audio that server did not confirm.

A draining server sends the final results of everything it received, then `end_of_stream` with
the number of samples it took, then closes with 1001 (going away). The client resends from that
sample on, on a new connection; times of the new connection's events are shifted by the audio
already done, so the caller sees one stream. Without an `end_of_stream` (the connection broke),
the end of the last final is what counts as done.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Callable, Optional

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from .stream import Blocks, ClientOptions, StreamResult, _iterate, encode, receive_all

log = logging.getLogger(__name__)
RECONNECT_CODES = {1001, 1006, 1012, 1013}  # going away, broken, service restart, try again later
RECONNECT_DELAY_S = 0.2


def shift_times(message: dict, seconds: float) -> dict:
    """`message` with its start/end/time (and its words') moved by `seconds`."""
    if not seconds:
        return message
    shifted = dict(message)
    for key in ("start", "end", "time"):
        if isinstance(shifted.get(key), (int, float)):
            shifted[key] = round(shifted[key] + seconds, 3)
    if isinstance(shifted.get("words"), list):
        shifted["words"] = [shift_times(w, seconds) if isinstance(w, dict) else w for w in shifted["words"]]
    return shifted


class ResumingStream:
    """One logical stream over as many connections as it takes."""

    def __init__(self, url: str, blocks: Blocks, options: ClientOptions, on_message=None, attempts: int = 10):
        self.url, self.options, self.on_message, self.attempts = url, options, on_message, attempts
        self.blocks = blocks
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=4)  # None after the last block
        self.exhausted = False
        self.unconfirmed: collections.deque[np.ndarray] = collections.deque()  # sent, not yet confirmed
        self.done_samples = 0  # confirmed by earlier connections
        self.results: list[StreamResult] = []

    async def _produce(self) -> None:
        """Pull blocks from the source in a task of its own (a sender cancelled on a closed
        connection must not cancel, and so end, the caller's generator)."""
        async for block in _iterate(self.blocks):
            await self.queue.put(np.asarray(block))
        await self.queue.put(None)

    async def run(self) -> list[StreamResult]:
        """Stream everything; one StreamResult per connection."""
        producer = asyncio.create_task(self._produce())
        try:
            return await self._connections()
        finally:
            producer.cancel()

    async def _connections(self) -> list[StreamResult]:
        for attempt in range(self.attempts + 1):
            try:
                result, confirmed = await self._connection()
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
                if attempt == self.attempts:
                    raise
                log.info("connecting failed (%s); retrying", exc)
                await asyncio.sleep(RECONNECT_DELAY_S * (attempt + 1))
                continue
            self.results.append(result)
            finished = result.close_code == 1000 or (self.exhausted and not self.unconfirmed_after(confirmed))
            if finished or result.close_code not in RECONNECT_CODES:
                return self.results
            self._confirm(confirmed)
            log.info("server closed with %s after %d samples: resuming on a new connection",
                     result.close_code, confirmed)
            await asyncio.sleep(RECONNECT_DELAY_S)
        return self.results

    def unconfirmed_after(self, confirmed: int) -> int:
        """Samples sent on this connection beyond `confirmed`."""
        return sum(b.size for b in self.unconfirmed) - confirmed

    def _confirm(self, samples: int) -> None:
        """Drop the first `samples` of the unconfirmed audio (the server is done with them)."""
        self.done_samples += samples
        while samples > 0 and self.unconfirmed:
            block = self.unconfirmed.popleft()
            if block.size > samples:
                self.unconfirmed.appendleft(block[samples:])
            samples -= block.size

    async def _connection(self) -> tuple[StreamResult, int]:
        headers = {"Authorization": f"Bearer {self.options.token}"} if self.options.token else None
        messages: list[dict] = []
        confirmed, last_final_end = None, 0.0
        offset = self.done_samples / self.options.sample_rate
        async with connect(self.url, additional_headers=headers, open_timeout=self.options.open_timeout,
                           max_size=None) as websocket:
            await websocket.send(json.dumps(self.options.start_message()))
            def handle(message: dict) -> None:
                nonlocal confirmed, last_final_end
                if message.get("type") == "end_of_stream":
                    confirmed = int(message.get("samples", 0))
                elif message.get("type") == "final":
                    last_final_end = float(message.get("end", 0.0))
                message = shift_times(message, offset)
                messages.append(message)
                if self.on_message is not None:
                    self.on_message(message)

            await receive_all(websocket, asyncio.create_task(self._send_audio(websocket)), handle)
        if confirmed is None:  # no end_of_stream: what the finals cover is done
            confirmed = min(int(last_final_end * self.options.sample_rate), self.unconfirmed_after(0))
        return StreamResult(tuple(messages), websocket.close_code, websocket.close_reason or ""), confirmed

    async def _send_audio(self, websocket) -> None:
        for block in list(self.unconfirmed):  # what the last server did not confirm, first
            await websocket.send(encode(block, self.options.encoding))
        while not self.exhausted:
            block = await self.queue.get()
            if block is None:
                self.exhausted = True
                break
            self.unconfirmed.append(block)  # before sending: a failed send is resent
            await websocket.send(encode(block, self.options.encoding))
        await websocket.send(json.dumps({"type": "end"}))


async def recognize_resuming(url: str, blocks: Blocks, options: ClientOptions = ClientOptions(),
                             on_message: Optional[Callable[[dict], None]] = None,
                             attempts: int = 10) -> list[StreamResult]:
    """Like `recognize`, reconnecting after a server goes away; one StreamResult per connection."""
    return await ResumingStream(url, blocks, options, on_message, attempts).run()
