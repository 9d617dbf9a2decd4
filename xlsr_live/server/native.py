"""The native protocol (docs/protocol.md): JSON start, binary audio, JSON end; events as JSON."""

from __future__ import annotations

import json
import logging
import time
from typing import Optional

from websockets.exceptions import ConnectionClosed

from ..streaming.events import Partial, event_to_dict
from .options import StreamOptions
from .outbox import ClientGone, Outbox
from .session import AudioFormatError, Channel, Closing, InferenceError, RecognitionSession, flush_then_close

log = logging.getLogger(__name__)

# close codes (RFC 6455 plus application codes in 4000-4999)
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_INVALID = 1000, 1001, 1003, 1007
CLOSE_POLICY, CLOSE_INTERNAL, CLOSE_IDLE, CLOSE_TIME_LIMIT = 1008, 1011, 4001, 4002
CLOSING_CODES = {Closing.IDLE: (CLOSE_IDLE, "idle timeout"),
                 Closing.TIME_LIMIT: (CLOSE_TIME_LIMIT, "session time limit"),
                 Closing.SHUTDOWN: (CLOSE_GOING_AWAY, "server shutting down")}
START_KEYS = {"type", "sample_rate", "encoding", "partials", "words", "hotwords", "lm", "language"}


class ProtocolError(Exception):
    """A client mistake: sent to the client as an `error` event, then the connection closes."""

    def __init__(self, code: str, message: str, close_code: int):
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code


def parse_json(message: str) -> dict:
    """A JSON object from a text message, or ProtocolError."""
    try:
        value = json.loads(message)
    except ValueError as exc:
        raise ProtocolError("bad_json", f"text message is not JSON: {exc}", CLOSE_INVALID) from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_json", f"text message {message[:80]!r} is not a JSON object", CLOSE_INVALID)
    return value


def parse_start(message) -> StreamOptions:
    """StreamOptions from the first message, or ProtocolError naming what is wrong."""
    if not isinstance(message, str):
        raise ProtocolError("bad_message", "the first message must be a JSON start message, not audio",
                            CLOSE_UNSUPPORTED)
    start = parse_json(message)
    if start.get("type") != "start":
        raise ProtocolError("bad_message", f"expected type 'start', got {start.get('type')!r}", CLOSE_UNSUPPORTED)
    unknown = sorted(set(start) - START_KEYS)
    if unknown:
        raise ProtocolError("bad_option", f"unknown start fields {unknown}", CLOSE_INVALID)
    fields = {k: v for k, v in start.items() if k != "type"}
    if "hotwords" in fields:
        if not isinstance(fields["hotwords"], list):
            raise ProtocolError("bad_option", f"hotwords {fields['hotwords']!r} is not a list", CLOSE_INVALID)
        fields["hotwords"] = tuple(fields["hotwords"])
    for key in ("partials", "words", "lm"):
        if key in fields and not isinstance(fields[key], bool):
            raise ProtocolError("bad_option", f"{key}={fields[key]!r} is not true/false", CLOSE_INVALID)
    try:
        return StreamOptions(**fields)
    except (TypeError, ValueError) as exc:
        raise ProtocolError("bad_option", str(exc), CLOSE_INVALID) from None


class NativeConnection:
    """Runs one native-protocol connection; `ctx` is the server's shared ServiceContext."""

    def __init__(self, websocket, ctx, channel: Channel, outbox: Outbox):
        self.websocket, self.ctx, self.channel, self.outbox = websocket, ctx, channel, outbox
        self.session: Optional[RecognitionSession] = None

    async def run(self) -> None:
        """Serve until end of stream, an error, a timeout or shutdown."""
        try:
            try:
                await self._serve()
            except InferenceError as exc:
                raise ProtocolError("internal_error", f"{exc}; the stream cannot continue", CLOSE_INTERNAL) from None
        except ProtocolError as exc:
            log.info("%s: %s: %s", self._name(), exc.code, exc.message)
            await self._error(exc)
        except (ConnectionClosed, ClientGone) as exc:
            log.info("%s: client went away (%s)", self._name(), exc)

    async def _error(self, exc: ProtocolError) -> None:
        """The error event, then the close code."""
        try:
            await self._send({"type": "error", "code": exc.code, "message": exc.message})
        except (ConnectionClosed, ClientGone):
            return
        await self._close(exc.close_code, exc.code)

    async def _close(self, code: int, reason: str) -> None:
        await flush_then_close(self.outbox, self.websocket, code, reason)

    def _name(self) -> str:
        return self.session.id if self.session else "native"

    async def _serve(self) -> None:
        first = await self.channel.receive()
        if isinstance(first, Closing):
            await self._close(*CLOSING_CODES[first])
            return
        options = parse_start(first)
        try:
            self.session = RecognitionSession(next(self.ctx.session_ids), self.ctx.engine, self.ctx.batcher,
                                              self.ctx.metrics, options)
        except ValueError as exc:
            raise ProtocolError("bad_option", str(exc), CLOSE_INVALID) from None
        await self._send({"type": "ready", "session": self.session.id, "sample_rate": options.sample_rate,
                          "encoding": options.encoding})
        while True:
            message = await self.channel.receive()
            if isinstance(message, Closing):
                await self._finish(*CLOSING_CODES[message])
                return
            if isinstance(message, bytes):
                await self._audio(message)
                continue
            request = parse_json(message)
            if request.get("type") != "end":
                raise ProtocolError("bad_message", f"expected audio or type 'end', got {request.get('type')!r}",
                                    CLOSE_UNSUPPORTED)
            await self._finish(CLOSE_NORMAL, "end of stream")
            return

    async def _audio(self, data: bytes) -> None:
        received = time.perf_counter()
        try:
            events = await self.session.feed(data)
        except AudioFormatError as exc:
            raise ProtocolError("bad_audio", str(exc), CLOSE_INVALID) from None
        await self._send_events(events, received)

    async def _finish(self, code: int, reason: str) -> None:
        """Flush the stream, send its last events and an end_of_stream message, then close."""
        await self._send_events(await self.session.end(), None)
        await self._send({"type": "end_of_stream", "session": self.session.id,
                          "audio_seconds": round(self.session.audio_seconds, 3), "samples": self.session.samples,
                          "reason": reason})
        await self._close(code, reason)

    async def _send_events(self, events: list, received: Optional[float]) -> None:
        for event in events:
            if isinstance(event, Partial):
                if not self.session.options.partials:
                    continue
            message = event_to_dict(event)
            if not self.session.options.words and "words" in message:
                del message["words"]
            await self._send(message)
            if received is not None and isinstance(event, Partial):
                self.ctx.metrics.partial_latency.observe(time.perf_counter() - received)

    async def _send(self, message: dict) -> None:
        kind = message.get("type")
        await self.outbox.put(json.dumps(message), partial=kind == "partial", supersedes=kind == "final")
