"""VAD gate: webrtcvad frames decide which stretches of the 16 kHz stream reach the model."""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Optional

import numpy as np

from ..constants import SAMPLE_RATE
from .buffer import SampleBuffer
from .options import SAMPLES_PER_MS, VadOptions

log = logging.getLogger(__name__)

INT16_MAX = 32_767


@dataclasses.dataclass(frozen=True)
class GateOutput:
    """One step of the gate's output: an utterance starts, carries audio, or ends."""

    kind: str  # "start" | "audio" | "end"
    sample: int  # stream sample (16 kHz) where it starts / where this audio starts / where it ends
    audio: Optional[np.ndarray] = None  # float32 samples for "audio"
    reason: str = ""  # for "end": "silence" or "end_of_stream"


def to_int16_bytes(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] -> little-endian int16 PCM bytes (clipped), as webrtcvad wants."""
    return np.clip(np.round(audio * 32_768.0), -32_768, INT16_MAX).astype("<i2").tobytes()


class VadGate:
    """Frames the 16 kHz stream for webrtcvad and emits utterance starts, audio and ends.

    Silence costs one webrtcvad call per frame and a short history (pre-roll + onset window).
    """

    def __init__(self, options: VadOptions):
        self.options = options
        self.frame_samples = options.frame_ms * SAMPLES_PER_MS
        self._onset_frames = options.onset_ms // options.frame_ms
        self._window_frames = options.onset_window_ms // options.frame_ms
        self._hangover_frames = options.hangover_ms // options.frame_ms
        self._history_samples = (options.pre_roll_ms + options.onset_window_ms) * SAMPLES_PER_MS
        # the history holds at most _history_samples + one frame; twice that moves it rarely
        self._history_capacity = 2 * (self._history_samples + self.frame_samples)
        self.reset()

    def reset(self) -> None:
        """Forget everything (webrtcvad adapts to its input: a fresh one): a new stream at sample 0."""
        self._vad = None
        if self.options.enabled:
            import webrtcvad

            self._vad = webrtcvad.Vad(self.options.aggressiveness)
        self._leftover = np.zeros(0, dtype=np.float32)
        self._position = 0  # stream samples consumed into whole frames
        self._history = SampleBuffer(capacity=self._history_capacity)
        self._flags: collections.deque[bool] = collections.deque(maxlen=self._window_frames)
        self.in_speech = False
        self._unvoiced_run = 0  # frames

    def process(self, audio: np.ndarray) -> list[GateOutput]:
        """Consume 16 kHz float32 samples; return the gate's output for every whole frame."""
        if not self.options.enabled:
            return self._process_ungated(audio)
        if len(self._leftover):
            audio = np.concatenate([self._leftover, audio])
        whole = len(audio) // self.frame_samples * self.frame_samples
        self._leftover = audio[whole:].copy()
        out: list[GateOutput] = []
        if whole == 0:
            return out
        pcm = to_int16_bytes(audio[:whole])
        speech_start = None  # index in `audio` where a run of in-speech frames begins
        for begin in range(0, whole, self.frame_samples):
            frame = audio[begin:begin + self.frame_samples]
            voiced = self._vad.is_speech(pcm[2 * begin:2 * (begin + self.frame_samples)], SAMPLE_RATE)
            if self.in_speech:
                if speech_start is None:
                    speech_start = begin
                if self._speech_frame(voiced):
                    out.append(GateOutput("audio", self._position - begin + speech_start,
                                          audio[speech_start:begin + self.frame_samples].copy()))
                    out.append(GateOutput("end", self._position + self.frame_samples, reason="silence"))
                    speech_start = None
            else:
                started = self._silence_frame(frame, voiced)
                if started is not None:
                    out.extend(started)
            self._position += self.frame_samples
        if self.in_speech and speech_start is not None:
            out.append(GateOutput("audio", self._position - whole + speech_start, audio[speech_start:whole].copy()))
        return out

    def _speech_frame(self, voiced: bool) -> bool:
        """Track the unvoiced run inside speech; True when the hangover has elapsed."""
        self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
        if self._unvoiced_run < self._hangover_frames:
            return False
        self.in_speech = False
        self._unvoiced_run = 0
        self._flags.clear()
        self._history = SampleBuffer(start=self._position + self.frame_samples, capacity=self._history_capacity)
        return True

    def _silence_frame(self, frame: np.ndarray, voiced: bool) -> Optional[list[GateOutput]]:
        """Keep history and onset flags; on onset return start + pre-roll audio (this frame included)."""
        self._history.append(frame)
        frame_end = self._position + self.frame_samples
        self._history.discard_before(frame_end - self._history_samples)
        self._flags.append(voiced)
        if sum(self._flags) < self._onset_frames:
            return None
        window_start = frame_end - len(self._flags) * self.frame_samples
        start = max(self._history.start, window_start - self.options.pre_roll_ms * SAMPLES_PER_MS)
        audio = self._history.get(start, frame_end)
        self._history.discard_before(frame_end)
        self.in_speech = True
        self._unvoiced_run = 0
        log.debug("speech onset at sample %d (utterance from %d)", window_start, start)
        return [GateOutput("start", start), GateOutput("audio", start, audio)]

    def _process_ungated(self, audio: np.ndarray) -> list[GateOutput]:
        """VAD disabled: one utterance from sample 0 carrying every sample."""
        out = []
        if not self.in_speech and len(audio):
            self.in_speech = True
            out.append(GateOutput("start", self._position))
        if len(audio):
            out.append(GateOutput("audio", self._position, audio.copy()))
            self._position += len(audio)
        return out

    def flush(self) -> list[GateOutput]:
        """End of stream: the partial frame (if in speech) and the end of an open utterance."""
        out = []
        if self.in_speech:
            if len(self._leftover):
                out.append(GateOutput("audio", self._position, self._leftover.copy()))
                self._position += len(self._leftover)
            out.append(GateOutput("end", self._position, reason="end_of_stream"))
        self._leftover = np.zeros(0, dtype=np.float32)
        self.in_speech = False
        return out
