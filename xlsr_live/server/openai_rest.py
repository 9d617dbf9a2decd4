"""OpenAI-compatible REST endpoints: `POST /v1/audio/transcriptions` and `GET /v1/models`.

Apps written against OpenAI's audio API switch to this server by changing the base URL; the API
key is the server's token. Transcription is the offline path (the same text as
`xlsr-live transcribe FILE`) with the server's decoder and its shared beam search and language model. Any `model` name is accepted and served by the one loaded model
(clients send names such as `whisper-1`); `GET /v1/models` lists that model under `model_name`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from typing import Optional

from ..formats import cues, subtitles
from .auth import token_ok

log = logging.getLogger(__name__)
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")


class ApiError(Exception):
    """An error answered as OpenAI's error JSON: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self):
        """The Starlette JSONResponse."""
        from starlette.responses import JSONResponse

        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


class BodyTooLarge(Exception):
    """The request body passed the upload limit while it was being read."""


def limited_receive(receive, limit: int):
    """An ASGI receive that raises BodyTooLarge once more than `limit` body bytes arrived."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge()
        return message

    return wrapped


def segments(words) -> list[dict]:
    """OpenAI verbose_json segments: subtitle-sized groups of words (no token ids or log-probs here)."""
    out = []
    for index, group in enumerate(cues(list(words))):
        out.append({"id": index, "seek": 0, "start": round(group[0].start, 3), "end": round(group[-1].end, 3),
                    "text": " ".join(w.word for w in group), "tokens": [], "temperature": 0.0,
                    "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0})
    return out


def render(transcript, response_format: str, granularities: tuple[str, ...], language: str):
    """The response of one transcription in the requested format."""
    from starlette.responses import JSONResponse, PlainTextResponse

    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript.words, response_format))
    usage = {"type": "duration", "seconds": round(transcript.duration, 3)}
    if response_format == "json":
        return JSONResponse({"text": transcript.text, "usage": usage})
    body = {"task": "transcribe", "language": language, "duration": round(transcript.duration, 3),
            "text": transcript.text, "usage": usage}
    if "segment" in granularities or not granularities:
        body["segments"] = segments(transcript.words)
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for w in transcript.words]
    return JSONResponse(body)


def form_choice(form, name: str, allowed: tuple[str, ...], default: str) -> str:
    """A form field that must be one of `allowed`."""
    value = form.get(name) or default
    if not isinstance(value, str) or value not in allowed:
        raise ApiError(400, f"{name} {str(value)[:50]!r} is not one of {list(allowed)}", param=name)
    return value


class OpenAIRoutes:
    """The /v1 routes of one server (`ctx`: its ServiceContext)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.transcribing = asyncio.Semaphore(1)  # one file at a time next to the live streams

    def routes(self) -> list:
        """Starlette routes."""
        from starlette.routing import Route

        return [Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"])]

    def _authorize(self, request) -> None:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not token_ok(self.ctx.options.token, given):
            raise ApiError(401, "Incorrect API key provided: this server wants its token as the bearer key.",
                           code="invalid_api_key")

    async def models(self, request):
        """GET /v1/models: the one model this server holds."""
        from starlette.responses import JSONResponse

        try:
            self._authorize(request)
        except ApiError as exc:
            return exc.response()
        model = {"id": self.ctx.options.model_name, "object": "model", "created": 0, "owned_by": "xlsr-live"}
        return JSONResponse({"object": "list", "data": [model]})

    async def transcriptions(self, request):
        """POST /v1/audio/transcriptions (multipart/form-data)."""
        try:
            self._authorize(request)
            return await self._transcribe(request)
        except ApiError as exc:
            return exc.response()

    async def _read_form(self, request):
        from starlette.requests import Request

        limit = self.ctx.options.max_upload_bytes
        declared = request.headers.get("content-length")
        too_large = ApiError(413, f"the request is larger than this server's limit of {limit} bytes "
                                  f"(--max-upload-bytes)", param="file", code="file_too_large")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        limited = Request(request.scope, limited_receive(request.receive, limit))
        try:
            return await limited.form(max_files=1, max_fields=32)
        except BodyTooLarge:
            raise too_large from None
        except Exception as exc:  # noqa: BLE001 - Starlette's parser errors: a malformed request
            raise ApiError(400, f"the request body is not valid multipart/form-data: {exc}") from None

    async def _transcribe(self, request):
        model = getattr(self.ctx.engine, "model", None)
        if model is None:
            raise ApiError(503, "this server has no model for file transcription", kind="server_error")
        form = await self._read_form(request)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "the request has no `file` part (an audio file upload)", param="file")
            response_format = form_choice(form, "response_format", RESPONSE_FORMATS, "json")
            granularities = tuple(form.getlist("timestamp_granularities[]"))
            for value in granularities:
                if value not in GRANULARITIES:
                    raise ApiError(400, f"timestamp_granularities[] {value[:50]!r} is not one of "
                                        f"{list(GRANULARITIES)}", param="timestamp_granularities[]")
            if form.get("stream") in ("true", "True", "1"):
                raise ApiError(400, "stream=true is not supported: use the realtime websocket /v1/realtime",
                               param="stream")
            language = str(form.get("language") or "")
            transcript = await self._run(upload)
        finally:
            await form.close()
        return render(transcript, response_format, granularities, language)

    async def _run(self, upload):
        """The offline transcript of an uploaded file (on a thread, one file at a time)."""
        from ..decoding import DecoderOptions
        from ..offline import transcribe_file

        engine = self.ctx.engine
        # the server's decoder (resolved at start-up) and its shared beam search / loaded LM
        options = getattr(engine, "streaming_options", None)
        decoder = options.decoder if options is not None else DecoderOptions()
        searches = getattr(engine, "beam_searches", None)
        name = os.path.basename(upload.filename or "audio")
        suffix = os.path.splitext(name)[1][:10]
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            while chunk := await upload.read(1 << 20):
                handle.write(chunk)
            handle.flush()
            async with self.transcribing:
                started = time.perf_counter()
                try:
                    transcript = await asyncio.to_thread(transcribe_file, engine.model, handle.name,
                                                         decoder=decoder, beam_searches=searches)
                except ValueError as exc:  # AudioError: unreadable or empty audio
                    message = str(exc).replace(handle.name, name)
                    raise ApiError(400, message, param="file", code="invalid_audio") from None
        log.info("transcribed %s (%.1f s of audio) in %.2f s", name, transcript.duration,
                 time.perf_counter() - started)
        return transcript

