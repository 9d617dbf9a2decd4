"""The service: one uvicorn server (Starlette for HTTP, websockets-sansio for websockets) with one
engine and micro-batcher shared by all connections; one coroutine and one handler object per connection."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import socket
from typing import Iterator, Optional

from websockets.protocol import State

from .asgi import AsgiWebSocket
from .batcher import BatchStats, MicroBatcher
from .engine import Engine
from .http import handshake_refusal, http_app
from .metrics import Metrics
from .native import CLOSE_GOING_AWAY, NativeConnection
from .options import ServerOptions, exposure_warning
from .outbox import Outbox
from .realtime import RealtimeConnection
from .session import Channel, discard_incoming, session_ids
from .vosk import VoskConnection

log = logging.getLogger(__name__)
PROTOCOL_PATHS = {"/native": "native", "/vosk": "vosk", "/v1/realtime": "realtime"}  # else: options.protocol
HANDLERS = {"native": NativeConnection, "vosk": VoskConnection, "realtime": RealtimeConnection}
TRANSPORT_SIZE_FACTOR = 4  # the transport cuts (1009) beyond this many max_message_bytes; handlers check the limit
CLOSE_TIMEOUT_S = 5.0  # after the grace period: sessions still open are cut off this long at most


@dataclasses.dataclass(frozen=True)
class ServiceContext:
    """What every connection handler may use; shared objects, never per-connection state."""

    options: ServerOptions
    engine: Engine
    batcher: MicroBatcher
    metrics: Metrics
    shutdown: asyncio.Event
    session_ids: Iterator[str]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket ('' binds every interface, IPv6 and IPv4 where the system allows)."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=2048)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host.strip("[]"), port), family=family, backlog=2048)


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
        self._sockets: dict[asyncio.Task, AsgiWebSocket] = {}
        self._per_address: collections.Counter[str] = collections.Counter()
        self._sessions_changed = asyncio.Condition()
        self._http = http_app(self.ctx, self._active)
        self._uvicorn = None
        self._socket: Optional[socket.socket] = None
        self._closed = asyncio.Event()
        self._stopped = asyncio.Event()

    def _on_batch(self, stats: BatchStats) -> None:
        self.ctx.metrics.observe_batch(stats.size, stats.compute_seconds)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        """ws:// or wss:// URL of the server."""
        scheme = "wss" if self.options.tls_cert else "ws"
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def http_url(self) -> str:
        """http:// or https:// URL of the server."""
        return self.url.replace("ws", "http", 1)

    async def start(self) -> "SpeechServer":
        """Bind and start accepting connections."""
        import uvicorn

        warning = exposure_warning(self.options)
        if warning:
            log.warning("%s", warning)
        config = uvicorn.Config(
            self, http="h11", ws="websockets-sansio", lifespan="off", log_config=None, access_log=False,
            ws_max_size=TRANSPORT_SIZE_FACTOR * self.options.max_message_bytes, ws_ping_interval=20.0, ws_ping_timeout=20.0,
            ssl_certfile=self.options.tls_cert, ssl_keyfile=self.options.tls_key,
            timeout_graceful_shutdown=int(CLOSE_TIMEOUT_S), server_header=False)
        config.load()
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.lifespan = config.lifespan_class(config)
        self._socket = bind_socket(self.options.host, self.options.port)
        self.ctx.batcher.start()
        await self._uvicorn.startup(sockets=[self._socket])
        log.info("listening on %s (protocol %s, batching %s, %d worker%s)", self.url, self.options.protocol,
                 "on" if self.options.batching else "off", self.options.workers, "s" * (self.options.workers > 1))
        return self

    async def __call__(self, scope, receive, send) -> None:
        """The ASGI application: websockets here, plain HTTP to Starlette."""
        if scope["type"] == "websocket":
            await self._websocket(AsgiWebSocket(scope, receive, send))
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    def _active(self) -> int:
        return len(self._sockets)

    @property
    def active_sessions(self) -> int:
        """Connections being served now."""
        return len(self._sockets)

    async def wait_active(self, count: int = 0) -> None:
        """Until at most `count` connections are being served."""
        async with self._sessions_changed:
            await self._sessions_changed.wait_for(lambda: len(self._sockets) <= count)

    @staticmethod
    def _address(websocket: AsgiWebSocket) -> str:
        peer = websocket.remote_address
        return str(peer[0]) if peer else ""

    async def _websocket(self, websocket: AsgiWebSocket) -> None:
        if not await websocket.wait_connect():
            return
        address = self._address(websocket)
        refusal = handshake_refusal(self.ctx, websocket.request, len(self._sockets), self._per_address[address])
        if refusal is not None:
            await websocket.deny(*refusal)
            return
        task = asyncio.current_task()
        self._sockets[task] = websocket
        self._per_address[address] += 1
        try:
            await websocket.accept()
            await self._serve(websocket)
        finally:
            del self._sockets[task]
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
            async with self._sessions_changed:
                self._sessions_changed.notify_all()

    async def _serve(self, websocket: AsgiWebSocket) -> None:
        """One connection, from its accepted handshake to its close."""
        metrics = self.ctx.metrics
        metrics.active_sessions += 1
        metrics.sessions_total += 1
        path = websocket.scope.get("path", "/")
        protocol = PROTOCOL_PATHS.get(path, self.options.protocol)
        limit = None if protocol == "realtime" else self.options.max_message_bytes  # realtime: error events
        channel = Channel(websocket, self.options.idle_timeout_s, self.options.session_timeout_s, self.ctx.shutdown,
                          max_bytes=limit)
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
            if websocket.state is State.OPEN:  # the handler returned without closing
                await websocket.close(1000, "")
            if websocket.state is not State.CLOSED:  # closing, perhaps with messages still queued
                await discard_incoming(websocket)
            metrics.active_sessions -= 1

    async def shutdown(self) -> None:
        """Refuse new sessions, give every open one its final result and a clean close, stop."""
        if self._uvicorn is None or self._closed.is_set():
            return
        self._closed.set()
        self.ctx.shutdown.set()
        tasks = set(self._sockets)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.options.shutdown_grace_s)
            if pending:
                log.warning("%d sessions did not finish within %.1f s", len(pending), self.options.shutdown_grace_s)
                for task in pending:  # a client that does not read: cut the connection
                    self._sockets[task].transport.abort()
                await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        await self._uvicorn.shutdown()
        await self.ctx.batcher.stop()
        self._stopped.set()

    async def wait_closed(self) -> None:
        """Until shutdown() has run."""
        await self._stopped.wait()

    async def __aenter__(self) -> "SpeechServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()


__all__ = ["SpeechServer", "ServiceContext", "CLOSE_GOING_AWAY"]
