"""The websocket service: one engine and micro-batcher shared by all connections."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import ssl
from typing import Iterator, Optional
from urllib.parse import urlsplit

from websockets.asyncio.server import serve
from websockets.protocol import State

from .batcher import BatchStats, MicroBatcher
from .engine import Engine
from .http import Router
from .metrics import Metrics
from .native import CLOSE_GOING_AWAY, NativeConnection
from .options import ServerOptions, exposure_warning
from .outbox import Outbox
from .session import Channel, discard_incoming, session_ids
from .vosk import VoskConnection

log = logging.getLogger(__name__)
PROTOCOL_PATHS = {"/native": "native", "/vosk": "vosk"}  # any other path: ServerOptions.protocol
HANDLERS = {"native": NativeConnection, "vosk": VoskConnection}


@dataclasses.dataclass(frozen=True)
class ServiceContext:
    """What every connection handler may use; shared objects, never per-connection state."""

    options: ServerOptions
    engine: Engine
    batcher: MicroBatcher
    metrics: Metrics
    shutdown: asyncio.Event
    session_ids: Iterator[str]


def tls_context(options: ServerOptions) -> Optional[ssl.SSLContext]:
    """Server TLS context from cert + key files, or None for plain ws://."""
    if options.tls_cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.tls_cert, options.tls_key)
    return context


def client_address(connection) -> str:
    """The peer's IP address ('' if unknown)."""
    peer = connection.remote_address
    return str(peer[0]) if peer else ""


class SpeechServer:
    """`async with SpeechServer(engine, options) as server:` serves until `shutdown()`."""

    def __init__(self, engine: Engine, options: ServerOptions = ServerOptions()):
        self.options = options
        metrics = Metrics()
        batcher = MicroBatcher(engine.run_jobs, options.max_batch, options.max_wait_ms, options.batching,
                               on_batch=self._on_batch, workers=options.workers)
        metrics.queue_depth = lambda: batcher.queue_depth
        metrics.queue_wait = lambda: batcher.recent_wait
        self.ctx = ServiceContext(options, engine, batcher, metrics, asyncio.Event(), session_ids())
        self._tasks: set[asyncio.Task] = set()
        self._per_address: collections.Counter[str] = collections.Counter()
        self._sessions_changed = asyncio.Condition()
        self._server = None
        self._closed = asyncio.Event()

    def _on_batch(self, stats: BatchStats) -> None:
        self.ctx.metrics.observe_batch(stats.size, stats.compute_seconds)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """ws:// or wss:// URL of the server."""
        scheme = "wss" if self.options.tls_cert else "ws"
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> "SpeechServer":
        """Bind and start accepting connections."""
        origins = None
        if self.options.allowed_origins:
            origins = list(self.options.allowed_origins) + [None]  # non-browser clients send no Origin
        warning = exposure_warning(self.options)
        if warning:
            log.warning("%s", warning)
        self.ctx.batcher.start()
        self._server = await serve(
            self._handle, self.options.host, self.options.port,
            process_request=Router(self.ctx, self._active, self._per_address.__getitem__),
            origins=origins, max_size=self.options.max_message_bytes, max_queue=self.options.receive_queue,
            ssl=tls_context(self.options), ping_interval=20, ping_timeout=20, close_timeout=5)
        log.info("listening on %s (protocol %s, batching %s, %d worker%s)", self.url, self.options.protocol,
                 "on" if self.options.batching else "off", self.options.workers, "s" * (self.options.workers > 1))
        return self

    def _active(self) -> int:
        return len(self._tasks)

    @property
    def active_sessions(self) -> int:
        """Connections being served now."""
        return len(self._tasks)

    async def wait_active(self, count: int = 0) -> None:
        """Until at most `count` connections are being served."""
        async with self._sessions_changed:
            await self._sessions_changed.wait_for(lambda: len(self._tasks) <= count)

    def _over_limits(self, address: str) -> bool:
        """Connections that raced past the handshake checks."""
        per_address = self.options.max_connections_per_address
        return len(self._tasks) >= self.options.max_connections or (
            per_address > 0 and self._per_address[address] >= per_address)

    async def _handle(self, websocket) -> None:
        address = client_address(websocket)
        if self._over_limits(address):
            self.ctx.metrics.rejected_total += 1
            await websocket.close(1013, "too many connections")
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        self._per_address[address] += 1
        metrics = self.ctx.metrics
        metrics.active_sessions += 1
        metrics.sessions_total += 1
        path = urlsplit(websocket.request.path).path
        protocol = PROTOCOL_PATHS.get(path, self.options.protocol)
        channel = Channel(websocket, self.options.idle_timeout_s, self.options.session_timeout_s, self.ctx.shutdown)
        outbox = Outbox(websocket, self.options.max_queued_messages, self.options.send_timeout_s,
                        on_drop=metrics.count_dropped_partials)
        try:
            await HANDLERS[protocol](websocket, self.ctx, channel, outbox).run()
        except Exception:  # noqa: BLE001 - one broken session must not take the server down
            log.exception("session failed")
            await websocket.close(1011, "internal error")
        finally:
            channel.close()
            await outbox.close()
            if websocket.state is not State.OPEN:  # failed (e.g. 1009) with messages still queued
                await discard_incoming(websocket)
            metrics.active_sessions -= 1
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
            self._tasks.discard(task)
            async with self._sessions_changed:
                self._sessions_changed.notify_all()

    async def shutdown(self) -> None:
        """Refuse new sessions, give every open one its final result and a clean close, stop."""
        if self._server is None or self._closed.is_set():
            return
        self._closed.set()
        self.ctx.shutdown.set()
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=self.options.shutdown_grace_s)
            if pending:
                log.warning("%d sessions did not finish within %.1f s", len(pending), self.options.shutdown_grace_s)
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        await self.ctx.batcher.stop()

    async def wait_closed(self) -> None:
        """Until shutdown() has run."""
        await self._closed.wait()
        await self._server.wait_closed()

    async def __aenter__(self) -> "SpeechServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()


__all__ = ["SpeechServer", "ServiceContext", "CLOSE_GOING_AWAY"]
