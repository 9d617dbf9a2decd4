"""alphacep vosk-server's websocket protocol, message for message.

Exactly one JSON reply per audio, eof or reset message (vosk's sample clients alternate send and
receive, so a missing reply deadlocks them); a config message gets no reply, as in vosk-server.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Optional

from websockets.exceptions import ConnectionClosed

from ..streaming.events import Final, Partial
from .native import CLOSE_INTERNAL, CLOSE_INVALID, CLOSE_NORMAL, CLOSE_POLICY, CLOSING_CODES
from .options import StreamOptions
from .outbox import ClientGone, Outbox
from .session import AudioFormatError, Channel, Closing, InferenceError, RecognitionSession, flush_then_close

log = logging.getLogger(__name__)


class VoskRefusal(Exception):
    """A request this server will not honour; the connection closes with `close_code`."""

    def __init__(self, message: str, close_code: int = CLOSE_POLICY):
        super().__init__(message)
        self.close_code = close_code


def parse_control(message: str) -> Optional[dict]:
    """The JSON object of a text message, or None if it is not one (vosk then treats it as data)."""
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def merge_finals(finals: list[Final]) -> tuple[str, list]:
    """Text and words of several finals as one vosk result."""
    text = " ".join(f.text for f in finals if f.text)
    return text, [w for f in finals for w in f.words]


class VoskConnection:
    """Runs one vosk-protocol connection."""

    def __init__(self, websocket, ctx, channel: Channel, outbox: Outbox):
        self.websocket, self.ctx, self.channel, self.outbox = websocket, ctx, channel, outbox
        self.sample_rate = ctx.options.vosk_sample_rate
        self.words, self.max_alternatives = True, 0
        self.phrases: tuple[str, ...] = ()
        self.session: Optional[RecognitionSession] = None
        self.pending: list[Final] = []  # finals not yet replied (one reply per message)
        self.partial = ""

    async def run(self) -> None:
        """Serve until eof, a refusal, a timeout or shutdown."""
        try:
            try:
                await self._serve()
            except InferenceError as exc:
                raise VoskRefusal(str(exc), CLOSE_INTERNAL) from None
        except VoskRefusal as exc:
            log.info("vosk: refused: %s", exc)
            await self._close(exc.close_code, str(exc))  # close_draining cuts it to 123 bytes
        except (ConnectionClosed, ClientGone) as exc:
            log.info("vosk: client went away (%s)", exc)

    async def _close(self, code: int, reason: str) -> None:
        await flush_then_close(self.outbox, self.websocket, code, reason)

    async def _serve(self) -> None:
        while True:
            message = await self.channel.receive()
            if isinstance(message, Closing):
                if self.session is not None:
                    await self._reply_final()
                await self._close(*CLOSING_CODES[message])
                return
            control = parse_control(message) if isinstance(message, str) else None
            if control is not None and "config" in control:
                self._configure(control["config"])
                continue
            if control is not None and "eof" in control:
                await self._reply_final()
                await self._close(CLOSE_NORMAL, "eof")
                return
            if control is not None and "reset" in control:
                await self._reply_final()
                self.session.reset()
                continue
            await self._audio(message if isinstance(message, bytes) else b"")

    def _configure(self, config) -> None:
        if not isinstance(config, dict):
            raise VoskRefusal(f"config {config!r} is not a JSON object", CLOSE_INVALID)
        if "model" in config:
            raise VoskRefusal("choosing a model by path is not allowed on this server")
        try:
            if "sample_rate" in config:
                rate = float(config["sample_rate"])
                if not rate.is_integer():
                    raise ValueError(f"sample_rate {config['sample_rate']!r} is not a whole number of Hz")
                if self.session is not None and int(rate) != self.sample_rate:
                    raise ValueError(f"sample_rate {rate:g} cannot change after audio was sent")
                self.sample_rate = int(rate)
            if "words" in config:
                self.words = bool(config["words"])
            if "max_alternatives" in config:
                self.max_alternatives = int(config["max_alternatives"])
            if "phrase_list" in config:
                self.phrases = tuple(str(p) for p in config["phrase_list"] if str(p).strip())
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(Infinity)
            raise VoskRefusal(f"bad config: {exc}", CLOSE_INVALID) from None

    def _ensure_session(self) -> RecognitionSession:
        if self.session is None:
            options = StreamOptions(sample_rate=self.sample_rate, encoding="pcm_s16le", hotwords=self.phrases)
            try:
                self.session = RecognitionSession(next(self.ctx.session_ids), self.ctx.engine,
                                                  self.ctx.batcher, self.ctx.metrics, options)
            except ValueError as exc:
                raise VoskRefusal(str(exc), CLOSE_INVALID) from None
        return self.session

    async def _audio(self, data: bytes) -> None:
        received = time.perf_counter()
        session = self._ensure_session()
        try:
            self._absorb(await session.feed(data))
        except AudioFormatError as exc:
            raise VoskRefusal(str(exc), CLOSE_INVALID) from None
        if self.pending:
            await self._send(self._result([self.pending.pop(0)]))
        else:
            await self._send({"partial": self.partial})
            self.ctx.metrics.partial_latency.observe(time.perf_counter() - received)

    async def _reply_final(self) -> None:
        """vosk's FinalResult(): every final not yet sent plus the end of the stream, as one reply."""
        self._absorb(await self._ensure_session().end())
        finals, self.pending = self.pending, []
        await self._send(self._result(finals))

    def _absorb(self, events: list) -> None:
        for event in events:
            if isinstance(event, Partial):
                self.partial = event.text
            elif isinstance(event, Final):
                self.partial = ""
                self.pending.append(event)

    def _result(self, finals: list[Final]) -> dict:
        text, words = merge_finals(finals)
        result = [{"conf": round(w.conf, 6), "end": round(w.end, 6), "start": round(w.start, 6),
                   "word": w.word} for w in words]
        if self.max_alternatives > 0:
            alternative = {"confidence": round(sum(w.conf for w in words), 6), "text": text}
            if self.words and result:
                alternative["result"] = result
            return {"alternatives": [alternative]}
        if self.words and result:
            return {"result": result, "text": text}
        return {"text": text}

    async def _send(self, message: dict) -> None:
        await self.outbox.put(json.dumps(message))  # vosk replies are never dropped: one per message
