"""StreamingRecognizer: audio in, SpeechStart / Partial / SpeechEnd / Final events out.

Synchronous and deterministic. `feed` = `push` (resample + VAD + buffering) followed by
`next_job` / `run_jobs` / `complete` until no window is ready; see docs/streaming.md.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Optional

import numpy as np
import torch

from ..audio import StreamResampler, check_sample_rate, to_float32
from ..constants import SAMPLE_RATE
from ..decoding import DecoderFactory
from ..decoding.lm import resolve_decoder
from ..model.loader import LoadedModel
from .events import Event, Final, Partial, SpeechEnd, SpeechStart
from .options import StreamingOptions
from .utterance import Utterance
from .vad import GateOutput, VadGate
from .windows import WindowJob, run_jobs

log = logging.getLogger(__name__)


class StreamingRecognizer:
    """Streaming recognition of one audio stream at a time (see docs/streaming.md)."""

    def __init__(self, model: LoadedModel, options: StreamingOptions = StreamingOptions(),
                 sample_rate: int = SAMPLE_RATE, decoders: Optional[DecoderFactory] = None):
        """`decoders`: a DecoderFactory to share (e.g. one KenLM beam decoder for many streams).

        Decoder kind "auto" (the default) becomes beam search with the checkpoint's
        `language_model/` folder if it has one, else greedy (docs/decoding.md).
        """
        if not isinstance(options, StreamingOptions):
            raise ValueError(f"options={options!r} is not a StreamingOptions")
        options = dataclasses.replace(options, decoder=resolve_decoder(options.decoder, model.source))
        if decoders is not None and decoders.options != options.decoder:
            raise ValueError(f"decoders were made for {decoders.options}, not {options.decoder}")
        if options.window.context == "kv_cache" and model.config.family.layer != "transformer":
            raise ValueError(f"window context='kv_cache' is not available for {model.source}: conformer "
                             "layers' relative/rotary positions depend on the window; use context='recompute'")
        if options.window.context == "kv_cache" and model.config.feat_extract_norm != "layer":
            raise ValueError("window context='kv_cache' needs a layer-norm (XLSR-kind) model; "
                             f"{model.source} uses feat_extract_norm={model.config.feat_extract_norm!r}")
        self.model = model
        self.options = options
        self._gate = VadGate(options.vad)
        self._make_decoder = decoders or DecoderFactory(model.vocab, options.decoder)
        self._generation = 0
        self.reset(sample_rate)

    # ---- stream life cycle -------------------------------------------------------------

    def reset(self, sample_rate: Optional[int] = None) -> None:
        """Start a new stream (stream time 0); optionally at another input sample rate."""
        if sample_rate is not None:
            self.sample_rate = check_sample_rate(sample_rate)
        self._resampler = StreamResampler(self.sample_rate)
        self._gate.reset()
        self._utterances: collections.deque[Utterance] = collections.deque()
        self._utterance_count = 0
        self._in_flight: Optional[WindowJob] = None
        self._ended = False
        self._generation += 1

    @property
    def done(self) -> bool:
        """The stream was ended and every event has been returned."""
        return self._ended and not self._utterances and self._in_flight is None

    def feed(self, audio: np.ndarray, sample_rate: Optional[int] = None) -> list[Event]:
        """Process audio of any length (int16 or float32); returns the events it produced."""
        events = self.push(audio, sample_rate)
        events.extend(self._run_ready())
        return events

    def flush(self) -> list[Event]:
        """End the stream: drain the resampler and VAD, decode what is left, return the last events."""
        events = self.end()
        events.extend(self._run_ready())
        return events

    def _run_ready(self) -> list[Event]:
        """Run every ready window one at a time (the synchronous path)."""
        events: list[Event] = []
        while (job := self.next_job()) is not None:
            events.extend(self.complete(job, run_jobs(self.model, [job])[0]))
        return events

    def state_bytes(self) -> int:
        """Bytes of per-stream state beyond the model (audio, conv features, cached keys/values)."""
        return sum(utterance.state_bytes() for utterance in self._utterances)

    # ---- split API ------------------------------------------------------------------------

    def push(self, audio: np.ndarray, sample_rate: Optional[int] = None) -> list[Event]:
        """Resample, VAD-gate and buffer audio; never runs the model. Returns model-free events."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"sample rate {sample_rate} Hz differs from the stream's {self.sample_rate} Hz; "
                "declare it up front or reset(sample_rate=...)"
            )
        if self._ended:
            raise RuntimeError("the stream has ended; call reset() to start a new one")
        samples = self._resampler.process(to_float32(audio))
        self._route(self._gate.process(samples))
        return self._progress()

    def end(self) -> list[Event]:
        """End of stream through the split API: no model call; then drain next_job/complete."""
        if self._ended:
            return []
        tail = self._resampler.process(np.zeros(0, dtype=np.float32), last=True)
        outputs = self._gate.process(tail) + self._gate.flush()
        self._route(outputs)
        self._ended = True
        return self._progress()

    def next_job(self) -> Optional[WindowJob]:
        """The next window ready for the model, or None (one job in flight per stream)."""
        if self._in_flight is not None or not self._utterances:
            return None
        utterance = self._utterances[0]
        self._in_flight = utterance.make_job(hash((id(self), self._generation)))
        return self._in_flight

    def complete(self, job: WindowJob, logits) -> list[Event]:
        """Decode a window's logits (num_frames, V); returns partial / end / final events."""
        if job is not self._in_flight or job is None:
            raise ValueError(f"job {getattr(job, 'key', job)} is not this stream's job in flight")
        if isinstance(logits, torch.Tensor):
            logits = logits.detach().float().cpu().numpy()
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (job.num_frames, len(self.model.vocab)):
            raise ValueError(f"logits of shape {logits.shape} for a job of {job.num_frames} frames "
                             f"x {len(self.model.vocab)} tokens")
        self._in_flight = None
        utterance = self._utterances[0]
        hypothesis = utterance.decoder.advance(logits[job.commit_start:job.commit_end],
                                               logits[job.commit_end:])
        utterance.committed(job)
        events: list[Event] = []
        if self.options.emit_partials:
            end = utterance.start + utterance.committed_frames() * utterance.hop
            events.append(Partial(hypothesis.stable, hypothesis.unstable, utterance.start / SAMPLE_RATE,
                                  end / SAMPLE_RATE))
        self._check_endpoint(utterance)
        events.extend(self._progress())
        return events

    # ---- internals --------------------------------------------------------------------------

    def _new_utterance(self, start: int) -> Utterance:
        """Open a new utterance at stream sample `start`."""
        utterance = Utterance(self._utterance_count, start, self.model, self.options,
                              self._make_decoder())
        self._utterance_count += 1
        self._utterances.append(utterance)
        return utterance

    def _route(self, outputs: list[GateOutput]) -> None:
        """Apply the gate's output to the open utterance (creating / ending / cutting)."""
        for out in outputs:
            if out.kind == "start":
                self._new_utterance(out.sample)
            elif out.kind == "audio":
                utterance = self._utterances[-1]
                utterance.audio.append(out.audio)
                self._cut_long(utterance)
            elif out.kind == "end":
                utterance = self._utterances[-1]
                if not utterance.ended:
                    utterance.end(out.sample - utterance.start, out.reason)

    def _cut_long(self, utterance: Utterance) -> None:
        """Forced cut(s) at the quietest point once the open utterance reaches the maximum length."""
        while utterance.needs_cut():
            cut = utterance.quietest_cut()
            log.debug("forced cut of utterance %d at %d samples", utterance.index, cut)
            utterance = self._split(utterance, cut, "max_length")

    def _split(self, utterance: Utterance, cut: int, reason: str) -> Utterance:
        """End `utterance` at frame-aligned sample `cut`; a successor right after it takes the rest.

        The successor inherits the end (sample and reason) if `utterance` had already ended.
        """
        successor = Utterance(self._utterance_count, utterance.start + cut, self.model, self.options,
                              self._make_decoder())
        self._utterance_count += 1
        tail_end = utterance.end_sample if utterance.ended else utterance.audio.end
        successor.audio.append(utterance.audio.get(cut, tail_end))
        if utterance.ended:
            successor.end(utterance.end_sample - cut, utterance.end_reason)
        utterance.end(cut, reason, total_frames=cut // utterance.hop)
        self._utterances.insert(self._utterances.index(utterance) + 1, successor)
        return successor

    def _check_endpoint(self, utterance: Utterance) -> None:
        """Model endpointing rules on the committed frames (unless no frame follows them)."""
        rules = self.options.endpoint
        frames = utterance.committed_frames()
        if not rules.enabled or (utterance.ended and utterance.total_frames <= frames):
            return
        blank_ms = utterance.decoder.trailing_blank_frames * 1000 * utterance.hop // SAMPLE_RATE
        has_text = utterance.decoder.has_text
        if (has_text and blank_ms >= rules.trailing_blank_ms) or (
                not has_text and rules.silence_only_ms and blank_ms >= rules.silence_only_ms):
            log.debug("endpoint of utterance %d after %d frames", utterance.index, frames)
            successor = self._split(utterance, frames * utterance.hop, "endpoint")
            self._cut_long(successor)

    def _progress(self) -> list[Event]:
        """Events that need no model: starts of the current utterance, ends and finals of finished ones."""
        events: list[Event] = []
        while self._utterances and self._in_flight is None:
            utterance = self._utterances[0]
            if not utterance.announced:
                utterance.announced = True
                events.append(SpeechStart(utterance.start / SAMPLE_RATE))
            if not utterance.finished():
                break
            self._utterances.popleft()
            end = (utterance.start + utterance.end_sample) / SAMPLE_RATE
            text, words = utterance.decoder.finish(utterance.start, utterance.hop)
            events.append(SpeechEnd(end, utterance.end_reason))
            events.append(Final(text, utterance.start / SAMPLE_RATE, end, tuple(words)))
        return events
