"""OpenAI realtime transcription sessions: session configuration and input audio formats.

The schema is the openai SDK's `openai/types/realtime/` (GA: `session.update` with a
`{"type": "transcription", "audio": {"input": {...}}}` session) and its beta form
(`transcription_session.update` with `input_audio_format`, `input_audio_transcription`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Optional

import numpy as np

FORMATS = {"pcm16": 24_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}  # format -> its sample rate (Hz)
GA_TYPES = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
TURN_TYPES = ("server_vad", "semantic_vad")  # semantic_vad is served by the server's VAD and endpointing
DEFAULT_MODEL = "xlsr-live"


class RealtimeError(Exception):
    """A client mistake answered with an `error` event; the session goes on."""

    def __init__(self, message: str, code: str = "invalid_value", param: Optional[str] = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.code, self.param, self.kind = message, code, param, kind


@dataclasses.dataclass(frozen=True)
class RealtimeConfig:
    """The effective configuration of one transcription session."""

    format: str = "pcm16"
    rate: int = 24_000  # Hz of the input audio
    model: str = DEFAULT_MODEL
    language: Optional[str] = None
    server_vad: bool = True  # turn_detection server_vad (True) or null (False: the client commits)

    def ga_session(self) -> dict:
        """The session object of session.created / session.updated (GA schema)."""
        if self.format == "pcm16":
            audio_format = {"type": "audio/pcm", "rate": self.rate}
        else:
            audio_format = {"type": {"g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}[self.format]}
        transcription = {"model": self.model} | ({"language": self.language} if self.language else {})
        turn = {"type": "server_vad"} if self.server_vad else None
        return {"type": "transcription", "audio": {"input": {
            "format": audio_format, "transcription": transcription, "turn_detection": turn}}}

    def beta_session(self) -> dict:
        """The session object of transcription_session.updated (beta schema)."""
        transcription = {"model": self.model} | ({"language": self.language} if self.language else {})
        return {"input_audio_format": self.format, "input_audio_transcription": transcription,
                "turn_detection": {"type": "server_vad"} if self.server_vad else None}


def _object(value, param: str) -> dict:
    if not isinstance(value, dict):
        raise RealtimeError(f"Invalid type for '{param}': expected an object, got {type(value).__name__}.",
                            code="invalid_type", param=param)
    return value


def _transcription(config: RealtimeConfig, value, param: str) -> RealtimeConfig:
    if value is None:
        return config
    value = _object(value, param)
    changes = {}
    for key in ("model", "language"):
        if key in value:
            if value[key] is not None and not isinstance(value[key], str):
                raise RealtimeError(f"Invalid type for '{param}.{key}': expected a string.", "invalid_type",
                                    f"{param}.{key}")
            changes[key] = value[key] if key == "language" else (value[key] or DEFAULT_MODEL)
    return dataclasses.replace(config, **changes)


def _turn_detection(config: RealtimeConfig, container: dict, param: str) -> RealtimeConfig:
    if "turn_detection" not in container:
        return config
    value = container["turn_detection"]
    if value is None:
        return dataclasses.replace(config, server_vad=False)
    kind = _object(value, param).get("type", "server_vad")
    if kind not in TURN_TYPES:
        raise RealtimeError(f"Invalid value: '{str(kind)[:40]}'. Supported values are: 'server_vad', "
                            f"'semantic_vad' and null.", param=f"{param}.type")
    return dataclasses.replace(config, server_vad=True)


def _ga_format(value, param: str) -> tuple[str, int]:
    value = _object(value, param)
    kind = value.get("type")
    if kind not in GA_TYPES:
        raise RealtimeError(f"Invalid value: '{str(kind)[:40]}'. Supported values are: 'audio/pcm', "
                            f"'audio/pcmu', and 'audio/pcma'.", param=f"{param}.type")
    name = GA_TYPES[kind]
    rate = value.get("rate", FORMATS[name]) if name == "pcm16" else FORMATS[name]
    if isinstance(rate, bool) or not isinstance(rate, int) or not 8_000 <= rate <= 48_000:
        raise RealtimeError(f"Invalid value: {rate!r}. audio/pcm rate must be 24000 (or another "
                            f"whole rate from 8000 to 48000 Hz on this server).", param=f"{param}.rate")
    return name, rate


def update_ga(config: RealtimeConfig, session) -> RealtimeConfig:
    """Apply a GA `session.update` session object."""
    session = _object(session, "session")
    if session.get("type", "transcription") != "transcription":
        raise RealtimeError(f"Invalid value: '{str(session.get('type'))[:40]}'. This server only holds "
                            "transcription sessions: session.type must be 'transcription'.", param="session.type")
    audio_input = _object(_object(session.get("audio", {}), "session.audio").get("input", {}), "session.audio.input")
    if "format" in audio_input and audio_input["format"] is not None:
        name, rate = _ga_format(audio_input["format"], "session.audio.input.format")
        config = dataclasses.replace(config, format=name, rate=rate)
    config = _transcription(config, audio_input.get("transcription"), "session.audio.input.transcription")
    return _turn_detection(config, audio_input, "session.audio.input.turn_detection")


def update_beta(config: RealtimeConfig, session) -> RealtimeConfig:
    """Apply a beta `transcription_session.update` session object."""
    session = _object(session, "session")
    if "input_audio_format" in session:
        name = session["input_audio_format"]
        if name not in FORMATS:
            raise RealtimeError(f"Invalid value: '{str(name)[:40]}'. Supported values are: 'pcm16', "
                                "'g711_ulaw', and 'g711_alaw'.", param="session.input_audio_format")
        config = dataclasses.replace(config, format=name, rate=FORMATS[name])
    config = _transcription(config, session.get("input_audio_transcription"), "session.input_audio_transcription")
    return _turn_detection(config, session, "session.turn_detection")


def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def g711_table(name: str) -> np.ndarray:
    """256-entry int16 decoding table of G.711 mu-law ('g711_ulaw') or A-law ('g711_alaw')."""
    return _ulaw_table() if name == "g711_ulaw" else _alaw_table()


def decode_append(audio, config: RealtimeConfig) -> bytes:
    """pcm_s16le bytes at `config.rate` from the base64 `audio` of input_audio_buffer.append."""
    if not isinstance(audio, str):
        raise RealtimeError("Invalid type for 'audio': expected a base64 string.", "invalid_type", "audio")
    try:
        raw = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeError("Invalid value for 'audio': it is not valid base64.", param="audio") from None
    if config.format == "pcm16":
        if len(raw) % 2:
            raise RealtimeError(f"Invalid value for 'audio': {len(raw)} bytes is not a whole number of "
                                "pcm16 samples (2 bytes each).", param="audio")
        return raw
    return g711_table(config.format)[np.frombuffer(raw, dtype=np.uint8)].astype("<i2").tobytes()
