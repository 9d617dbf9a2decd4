"""Streaming options: one frozen dataclass per concern, validated on construction.

Durations are given in milliseconds (the unit people configure); the engine converts them to
samples (16 kHz) and frames (20 ms) with the properties below.
"""

from __future__ import annotations

import dataclasses

from ..constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from ..decoding.options import DecoderOptions
from ..validation import check as _check

FRAME_MS = 1000 * SAMPLES_PER_FRAME // SAMPLE_RATE  # 20 ms per CTC frame
SAMPLES_PER_MS = SAMPLE_RATE // 1000  # 16
VAD_FRAME_MS = (10, 20, 30)  # frame sizes webrtcvad accepts
CONTEXT_MODES = ("recompute", "kv_cache")
BUFFER_SLACK_FRAMES = 50  # audio frames that arrive while a window waits for the model (1 s)


def _check_frame_multiple(name: str, value: int, minimum: int = 0) -> None:
    """Durations cut into model frames must be whole multiples of 20 ms."""
    _check(isinstance(value, int) and not isinstance(value, bool),
           f"{name}={value!r} must be an int number of milliseconds")
    _check(value >= minimum, f"{name}={value} ms must be >= {minimum} ms")
    _check(value % FRAME_MS == 0, f"{name}={value} ms must be a multiple of {FRAME_MS} ms")


@dataclasses.dataclass(frozen=True)
class VadOptions:
    """webrtcvad gating: what counts as speech, and how much audio around it reaches the model."""

    enabled: bool = True  # False: everything is one utterance (until the max length / endpoints)
    aggressiveness: int = 2  # webrtcvad mode 0 (permissive) .. 3 (strict)
    frame_ms: int = 30  # webrtcvad frame: 10, 20 or 30 ms
    onset_ms: int = 90  # voiced audio needed (within onset window) to start an utterance
    onset_window_ms: int = 150  # window in which onset_ms of voiced frames must fall
    pre_roll_ms: int = 300  # audio kept before the onset window and given to the model
    hangover_ms: int = 600  # continuous unvoiced audio that ends an utterance
    max_utterance_ms: int = 30_000  # forced cut (at the quietest point) beyond this length
    cut_search_ms: int = 2_000  # the forced cut looks for the quietest frame in this last stretch

    def __post_init__(self) -> None:
        _check(self.aggressiveness in (0, 1, 2, 3), f"aggressiveness={self.aggressiveness!r} not in 0..3")
        _check(self.frame_ms in VAD_FRAME_MS, f"frame_ms={self.frame_ms!r} not one of {VAD_FRAME_MS}")
        for name in ("onset_ms", "onset_window_ms", "pre_roll_ms", "hangover_ms"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 0, f"{name}={value!r} must be an int >= 0")
            _check(value % self.frame_ms == 0, f"{name}={value} ms is not a multiple of frame_ms={self.frame_ms}")
        _check(self.onset_ms >= self.frame_ms, f"onset_ms={self.onset_ms} must be >= frame_ms={self.frame_ms}")
        _check(self.onset_window_ms >= self.onset_ms,
               f"onset_window_ms={self.onset_window_ms} must be >= onset_ms={self.onset_ms}")
        _check(self.hangover_ms >= self.frame_ms, f"hangover_ms={self.hangover_ms} must be >= {self.frame_ms}")
        _check_frame_multiple("cut_search_ms", self.cut_search_ms, FRAME_MS)
        _check_frame_multiple("max_utterance_ms", self.max_utterance_ms, 2 * self.cut_search_ms)


@dataclasses.dataclass(frozen=True)
class WindowOptions:
    """Model windows: left context + chunk + lookahead; only the chunk's frames are committed.

    context="recompute" (exact): every window runs the transformer over its left context again.
    context="kv_cache" (approximate, layer-norm models only): each layer keeps the keys/values of
    the last left_context_ms of committed frames from earlier windows, and a window runs the
    transformer over its chunk + lookahead only (see docs/performance.md).
    """

    chunk_ms: int = 1000
    left_context_ms: int = 3000
    lookahead_ms: int = 400
    context: str = "recompute"

    def __post_init__(self) -> None:
        _check(self.context in CONTEXT_MODES, f"context={self.context!r} is not one of {CONTEXT_MODES}")
        _check_frame_multiple("chunk_ms", self.chunk_ms, FRAME_MS)
        _check_frame_multiple("left_context_ms", self.left_context_ms)
        _check_frame_multiple("lookahead_ms", self.lookahead_ms)

    @property
    def chunk_frames(self) -> int:
        """Frames committed per window."""
        return self.chunk_ms // FRAME_MS

    @property
    def left_frames(self) -> int:
        """Frames of left context before the chunk."""
        return self.left_context_ms // FRAME_MS

    @property
    def lookahead_frames(self) -> int:
        """Frames of right context after the chunk."""
        return self.lookahead_ms // FRAME_MS


@dataclasses.dataclass(frozen=True)
class EndpointOptions:
    """Model-side endpointing (Kaldi/sherpa-like rules) on top of the VAD.

    Rule 1: `trailing_blank_ms` of blank frames after some text ends the utterance.
    Rule 2: `silence_only_ms` of blank frames with no text at all ends the utterance (0 = off).
    The maximum utterance length is VadOptions.max_utterance_ms (forced cut).
    """

    enabled: bool = True
    trailing_blank_ms: int = 1000
    silence_only_ms: int = 5000

    def __post_init__(self) -> None:
        _check_frame_multiple("trailing_blank_ms", self.trailing_blank_ms, FRAME_MS)
        _check_frame_multiple("silence_only_ms", self.silence_only_ms)


@dataclasses.dataclass(frozen=True)
class StreamingOptions:
    """Everything the streaming engine can be told, grouped by concern."""

    vad: VadOptions = VadOptions()
    window: WindowOptions = WindowOptions()
    decoder: DecoderOptions = DecoderOptions()
    endpoint: EndpointOptions = EndpointOptions()
    emit_partials: bool = True  # a Partial after every committed chunk

    def __post_init__(self) -> None:
        for name, kind in (("vad", VadOptions), ("window", WindowOptions), ("decoder", DecoderOptions),
                           ("endpoint", EndpointOptions)):
            _check(isinstance(getattr(self, name), kind), f"{name}={getattr(self, name)!r} is not a {kind.__name__}")
        max_frames = self.vad.max_utterance_ms // FRAME_MS
        search_frames = self.vad.cut_search_ms // FRAME_MS
        window_frames = self.window.chunk_frames + self.window.lookahead_frames
        _check(window_frames <= max_frames - search_frames,
               f"window.chunk_ms={self.window.chunk_ms} + window.lookahead_ms={self.window.lookahead_ms} "
               f"is too long for vad.max_utterance_ms={self.vad.max_utterance_ms} minus "
               f"vad.cut_search_ms={self.vad.cut_search_ms}")
