"""OpenAI's realtime transcription websocket (`/v1/realtime?intent=transcription`).

Client events: session.update (GA) or transcription_session.update (beta),
input_audio_buffer.append / .commit / .clear. Server events: session.created / .updated,
input_audio_buffer.speech_started / .speech_stopped / .committed / .cleared,
conversation.item.input_audio_transcription.delta (the stable text as it grows) and .completed
(the final), error. A client mistake gets an `error` event and the session goes on: nothing
already accepted is lost. With turn_detection server_vad the engine's VAD and endpointing make the
turns; with null the client's commits do.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from typing import Optional

from websockets.exceptions import ConnectionClosed

from ..streaming.events import Final, Partial, SpeechEnd, SpeechStart
from .native import CLOSE_INTERNAL, CLOSE_NORMAL, CLOSING_CODES
from .options import StreamOptions
from .outbox import ClientGone, Outbox
from .realtime_session import RealtimeConfig, RealtimeError, decode_append, update_beta, update_ga
from .session import AudioFormatError, Channel, Closing, InferenceError, RecognitionSession, flush_then_close

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Item:
    """One conversation item: the transcript of one turn."""

    id: str
    sent: str = ""  # text already sent as deltas
    finals: list = dataclasses.field(default_factory=list)  # texts of engine finals in this turn
    start_ms: int = 0
    end_ms: int = 0
    committed: bool = False


class RealtimeConnection:
    """Runs one realtime transcription connection."""

    def __init__(self, websocket, ctx, channel: Channel, outbox: Outbox):
        self.websocket, self.ctx, self.channel, self.outbox = websocket, ctx, channel, outbox
        self.config = RealtimeConfig()
        self.session: Optional[RecognitionSession] = None
        self.item: Optional[Item] = None
        self.previous_item: Optional[str] = None
        self.offset_ms = 0  # stream time of the current recognizer's zero (it restarts after a commit)
        self.buffered = 0  # samples appended since the last commit or clear
        self.ids = itertools.count(1)

    async def run(self) -> None:
        """Serve until the client closes, a timeout or shutdown."""
        try:
            await self._send({"type": "session.created", "session": self.config.ga_session()})
            await self._serve()
        except InferenceError as exc:
            await self._error(RealtimeError(f"{exc}; the session cannot continue", "internal_error",
                                            kind="server_error"))
            await flush_then_close(self.outbox, self.websocket, CLOSE_INTERNAL, "internal error")
        except (ConnectionClosed, ClientGone) as exc:
            log.info("realtime: client went away (%s)", exc)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids):06d}"

    async def _serve(self) -> None:
        while True:
            message = await self.channel.receive()
            if isinstance(message, Closing):
                await self._commit(empty_ok=True)
                await flush_then_close(self.outbox, self.websocket, *CLOSING_CODES[message])
                return
            event_id = None
            try:
                event = self._parse(message)
                event_id = event.get("event_id")
                self._check_size(message)
                await self._dispatch(event)
            except RealtimeError as exc:
                await self._error(exc, event_id)

    def _parse(self, message) -> dict:
        if isinstance(message, bytes):
            raise RealtimeError("Binary messages are not supported: send audio as input_audio_buffer.append "
                                "events with base64 audio.", "invalid_message")
        try:
            event = json.loads(message)
        except ValueError as exc:
            raise RealtimeError(f"The event is not valid JSON: {exc}", "invalid_json") from None
        if not isinstance(event, dict):
            raise RealtimeError("The event must be a JSON object.", "invalid_json")
        return event

    def _check_size(self, message: str) -> None:
        """Events up to max_message_bytes (the transport cuts at a few times that, with 1009)."""
        if len(message) > self.ctx.options.max_message_bytes:
            raise RealtimeError(f"The event is {len(message)} bytes; this server takes at most "
                                f"{self.ctx.options.max_message_bytes} bytes per event: send smaller appends.",
                                "message_too_large")

    async def _dispatch(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            await self._append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            self._clear()
            await self._send({"type": "input_audio_buffer.cleared"})
        elif kind in ("session.update", "transcription_session.update"):
            await self._update(kind, event.get("session"))
        else:
            raise RealtimeError(f"Invalid value: '{str(kind)[:60]}'. Supported values are: 'session.update', "
                                "'transcription_session.update', 'input_audio_buffer.append', "
                                "'input_audio_buffer.commit' and 'input_audio_buffer.clear'.", param="type")

    async def _update(self, kind: str, session) -> None:
        update = update_ga if kind == "session.update" else update_beta
        config = update(self.config, session)
        if self.session is not None and (config.format, config.rate) != (self.config.format, self.config.rate):
            raise RealtimeError("The input audio format cannot change after audio was appended.",
                                param="session")
        self.config = config
        if kind == "session.update":
            await self._send({"type": "session.updated", "session": config.ga_session()})
        else:
            await self._send({"type": "transcription_session.updated", "session": config.beta_session()})

    def _ensure_session(self) -> RecognitionSession:
        if self.session is None:
            options = StreamOptions(sample_rate=self.config.rate, encoding="pcm_s16le")
            self.session = RecognitionSession(next(self.ctx.session_ids), self.ctx.engine, self.ctx.batcher,
                                              self.ctx.metrics, options)
        return self.session

    async def _append(self, audio) -> None:
        data = decode_append(audio, self.config)
        session = self._ensure_session()
        try:
            events = await session.feed(data)
        except AudioFormatError as exc:
            raise RealtimeError(str(exc), param="audio") from None
        self.buffered += len(data) // 2
        for event in events:
            await self._engine_event(event)

    async def _commit(self, empty_ok: bool = False) -> None:
        """The client's commit (or the end of the connection): flush the turn, complete it."""
        if self.session is None or not self.buffered:
            if empty_ok:
                return
            raise RealtimeError("Error committing input audio buffer: the buffer is empty.",
                                "input_audio_buffer_commit_empty")
        for event in await self.session.end():
            await self._engine_event(event, flushing=True)
        if self.item is None and not empty_ok:  # the client's commit always makes an item
            self.item = Item(self._id("item"), start_ms=self.offset_ms, end_ms=self._ms(self.buffered / self.config.rate))
        if self.item is not None:
            await self._complete()
        self._restart()

    def _clear(self) -> None:
        """Drop the uncommitted audio and the turn heard so far."""
        if self.session is not None:
            self._restart()
        self.item = None

    def _restart(self) -> None:
        self.offset_ms += round(1000 * self.buffered / self.config.rate)
        self.buffered = 0
        self.session.reset()

    def _ms(self, seconds: float) -> int:
        return self.offset_ms + round(1000 * seconds)

    async def _engine_event(self, event, flushing: bool = False) -> None:
        if isinstance(event, SpeechStart):
            if self.item is None:
                self.item = Item(self._id("item"), start_ms=self._ms(event.time))
                if self.config.server_vad:
                    await self._send({"type": "input_audio_buffer.speech_started", "item_id": self.item.id,
                                      "audio_start_ms": self.item.start_ms})
            return
        if self.item is None:
            self.item = Item(self._id("item"), start_ms=self._ms(getattr(event, "start", 0.0)))
        if isinstance(event, Partial):
            await self._delta(" ".join(self.item.finals + [event.stable]).strip())
        elif isinstance(event, SpeechEnd) and self.config.server_vad:
            await self._send({"type": "input_audio_buffer.speech_stopped", "item_id": self.item.id,
                              "audio_end_ms": self._ms(event.time)})
            await self._committed()  # as OpenAI's server VAD does: the turn is committed at speech end
        elif isinstance(event, Final):
            self.item.end_ms = self._ms(event.end)
            if event.text:
                self.item.finals.append(event.text)
            await self._delta(" ".join(self.item.finals))
            if self.config.server_vad and not flushing:
                await self._complete()

    async def _delta(self, text: str) -> None:
        item = self.item
        if text.startswith(item.sent) and len(text) > len(item.sent):
            await self._send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item.id,
                              "content_index": 0, "delta": text[len(item.sent):]})
            item.sent = text

    async def _committed(self) -> None:
        """input_audio_buffer.committed for the current item, once."""
        if not self.item.committed:
            self.item.committed = True
            await self._send({"type": "input_audio_buffer.committed", "item_id": self.item.id,
                              "previous_item_id": self.previous_item})
            self.previous_item = self.item.id

    async def _complete(self) -> None:
        await self._committed()
        item, self.item = self.item, None
        seconds = max(0, item.end_ms - item.start_ms) / 1000
        await self._send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item.id,
                          "content_index": 0, "transcript": " ".join(item.finals),
                          "usage": {"type": "duration", "seconds": seconds}})

    async def _error(self, exc: RealtimeError, event_id: Optional[str] = None) -> None:
        log.info("realtime: %s: %s", exc.code, exc.message)
        error = {"type": exc.kind, "code": exc.code, "message": exc.message, "param": exc.param,
                 "event_id": event_id if isinstance(event_id, str) else None}
        await self._send({"type": "error", "error": error})

    async def _send(self, message: dict) -> None:
        message = {"event_id": self._id("event"), **message}
        await self.outbox.put(json.dumps(message))  # deltas add up: none may be dropped


__all__ = ["RealtimeConnection", "CLOSE_NORMAL"]
