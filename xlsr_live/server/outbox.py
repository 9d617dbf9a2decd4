"""Bounded outgoing queue of one connection: slow readers lose stale partials, never anything else.

Policy (docs/protocol.md, "Slow clients"):

* Messages are sent in order by one sender task per connection.
* A queued `partial` that has not been sent yet is *stale* as soon as a newer partial or a final
  is queued (the newer message supersedes it): it is dropped. Nothing else is ever dropped:
  `ready`, `speech_start`, `speech_end`, `final`, `error`, `end_of_stream` and every vosk reply.
* At most `max_messages` undroppable messages wait; when that many are queued the session stops
  reading the client's audio (`put` waits), so a client that does not read also cannot make the
  server buffer its audio: TCP flow control holds it back.
* A single message that cannot be written for `send_timeout_s` (the client stopped reading and
  every buffer is full) ends the connection: close code 4003, or an abort if even the close frame
  cannot be written.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Optional

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

log = logging.getLogger(__name__)
CLOSE_SLOW_CLIENT = 4003


@dataclasses.dataclass
class OutboxStats:
    """What the outbox did over its connection's life."""

    sent: int = 0
    dropped_partials: int = 0
    max_depth: int = 0
    stalled: bool = False


class ClientGone(ConnectionError):
    """The connection is closing or closed: nothing more can be sent."""


class SlowClientError(ClientGone):
    """The client did not read its messages within the send timeout."""


class Outbox:
    """`await put(text, partial=...)` queues; one task sends; `await flush()` before closing."""

    def __init__(self, websocket, max_messages: int = 64, send_timeout_s: float = 30.0, on_drop=None):
        if max_messages < 1:
            raise ValueError(f"max_messages={max_messages} must be at least 1")
        self.websocket = websocket
        self.max_messages = max_messages
        self.send_timeout_s = send_timeout_s
        self.on_drop = on_drop
        self.stats = OutboxStats()
        self._queue: collections.deque[tuple[str, bool]] = collections.deque()
        self._changed = asyncio.Condition()
        self._failure: Optional[BaseException] = None
        self._task: Optional[asyncio.Task] = None
        self._sending = False

    @property
    def depth(self) -> int:
        """Messages waiting to be sent."""
        return len(self._queue)

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def put(self, text: str, partial: bool = False, supersedes: bool = False) -> None:
        """Queue one message; `partial`: droppable when stale; `supersedes`: drops queued partials."""
        self._check()
        if self._task is None:
            self._task = asyncio.ensure_future(self._sender())
        async with self._changed:
            if partial or supersedes:
                self._drop_partials()
            await self._changed.wait_for(lambda: self._failure is not None or self._undroppable() < self.max_messages)
            self._check()
            self._queue.append((text, partial))
            self.stats.max_depth = max(self.stats.max_depth, len(self._queue))
            self._changed.notify_all()

    def _undroppable(self) -> int:
        return sum(1 for _, partial in self._queue if not partial)

    def _drop_partials(self) -> None:
        kept = collections.deque(item for item in self._queue if not item[1])
        dropped = len(self._queue) - len(kept)
        if dropped:
            self._queue = kept
            self.stats.dropped_partials += dropped
            if self.on_drop is not None:
                self.on_drop(dropped)

    async def flush(self) -> None:
        """Wait until everything queued was sent (or raise why it could not be)."""
        if self._task is None:
            return
        async with self._changed:
            await self._changed.wait_for(lambda: self._failure is not None or not self._queue and not self._sending)
        self._check()

    async def _sender(self) -> None:
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: bool(self._queue))
                    text, _ = self._queue.popleft()
                    self._sending = True
                    self._changed.notify_all()
                if self.websocket.state is not State.OPEN:  # send() would wait for the close to finish
                    raise ClientGone(f"connection is {self.websocket.state.name.lower()}")
                await self._send_within_timeout(text)
                self.stats.sent += 1
                async with self._changed:
                    self._sending = False
                    self._changed.notify_all()
        except (ConnectionClosed, ClientGone) as exc:
            await self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the session through put/flush
            log.exception("sending failed")
            await self._fail(exc)

    async def _send_within_timeout(self, text: str) -> None:
        """One send, or SlowClientError after send_timeout_s. Not asyncio.wait_for: on Python 3.11 it
        swallows a cancellation that arrives as the send completes, and close() then waits forever."""
        send = asyncio.ensure_future(self.websocket.send(text))
        try:
            done, _ = await asyncio.wait({send}, timeout=self.send_timeout_s)
        except asyncio.CancelledError:
            send.cancel()
            raise
        if not done:
            send.cancel()
            self.stats.stalled = True
            raise SlowClientError(f"client did not read for {self.send_timeout_s:g} s")
        send.result()

    async def _fail(self, exc: BaseException) -> None:
        async with self._changed:
            self._failure = exc
            self._changed.notify_all()
        if isinstance(exc, SlowClientError):
            log.warning("closing a connection whose client stopped reading: %s", exc)
            try:
                await asyncio.wait_for(self.websocket.close(CLOSE_SLOW_CLIENT, "client not reading"),
                                       self.send_timeout_s)
            except (asyncio.TimeoutError, ConnectionClosed):
                pass
            finally:
                self.websocket.transport.abort()

    async def close(self) -> None:
        """Stop the sender (whatever was not sent is dropped)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping it is all we want
                pass
