"""An ASGI websocket (as uvicorn serves it) with the small websockets-style interface the protocol
handlers use: `recv`, `send`, `close`, `state`, `close_code`, `remote_address`, `transport`, iteration.

uvicorn's websockets-sansio transport does the framing, size limit (1009), ping/pong and receive
flow control (it stops reading the socket while a message waits for the handler); this class
only maps ASGI messages to the calls and exceptions of `websockets`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.protocol import State

CLOSE_NO_STATUS = 1005


@dataclasses.dataclass(frozen=True)
class Request:
    """What the handlers read of the handshake request."""

    path: str  # with the query string
    headers: Headers


def scope_request(scope: dict) -> Request:
    """The Request of an ASGI scope (header names and values as latin-1 text)."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "/") + (f"?{query}" if query else "")
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])])
    return Request(path, headers)


class AsgiWebSocket:
    """One websocket connection of an ASGI server, used like a `websockets` server connection."""

    def __init__(self, scope: dict, receive, send):
        self.scope, self._receive, self._send = scope, receive, send
        self.request = scope_request(scope)
        client = scope.get("client")
        self.remote_address = tuple(client) if client else None
        self.state = State.CONNECTING
        self.close_code: Optional[int] = None
        self.close_reason = ""

    @property
    def transport(self):
        """The server's socket transport (uvicorn's protocol object holds it), for `abort()`."""
        protocol = getattr(self._send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        return transport if transport is not None else _NoTransport()

    async def wait_connect(self) -> bool:
        """Consume the ASGI connect event; False if the client went away first."""
        message = await self._receive()
        return message["type"] == "websocket.connect"

    async def accept(self) -> None:
        """Complete the handshake (101), choosing OpenAI's `realtime` subprotocol when offered."""
        message = {"type": "websocket.accept"}
        if "realtime" in self.scope.get("subprotocols", ()):
            message["subprotocol"] = "realtime"
        await self._send(message)
        self.state = State.OPEN

    async def deny(self, status: int, text: str, headers: Optional[dict] = None) -> None:
        """Refuse the handshake with an HTTP response (ASGI websocket denial response extension)."""
        body = text.encode()
        raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
        await self._send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await self._send({"type": "websocket.http.response.body", "body": body})
        self.state = State.CLOSED

    def _closed(self) -> ConnectionClosed:
        code = self.close_code if self.close_code is not None else CLOSE_NO_STATUS
        return ConnectionClosed(Close(code, self.close_reason) if code != CLOSE_NO_STATUS else None, None)

    async def recv(self) -> Union[str, bytes]:
        """The next message; ConnectionClosed once the connection is closed."""
        if self.state is State.CLOSED:
            raise self._closed()
        message = await self._receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else message.get("bytes") or b""
        self.state = State.CLOSED
        if self.close_code is None:
            self.close_code, self.close_reason = message.get("code", CLOSE_NO_STATUS), message.get("reason") or ""
        raise self._closed()

    async def send(self, message: Union[str, bytes]) -> None:
        """Send one text or binary message (waits while the socket's buffer is full)."""
        if self.state is not State.OPEN:
            raise self._closed()
        key = "text" if isinstance(message, str) else "bytes"
        try:
            await self._send({"type": "websocket.send", key: message})
        except OSError:  # uvicorn's ClientDisconnected
            self.state = State.CLOSED
            raise self._closed() from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send the close frame (uvicorn completes the closing handshake)."""
        if self.state is not State.OPEN:
            return
        self.state = State.CLOSING
        self.close_code, self.close_reason = code, reason
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:
            self.state = State.CLOSED

    def __aiter__(self):
        return self._messages()

    async def _messages(self):
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return


class _NoTransport:
    """Stands in when the ASGI server exposes no transport: aborting is then a no-op."""

    def abort(self) -> None:
        """Nothing to abort."""
