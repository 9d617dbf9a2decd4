"""One utterance's audio, normalisation, cached features and window plan."""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch

from ..model.loader import NORM_EPS, LoadedModel
from .buffer import SampleBuffer
from .options import SAMPLES_PER_MS, StreamingOptions
from .kvcache import KeyValueCache
from .windows import FeatureCache, WindowJob

log = logging.getLogger(__name__)


class Utterance:
    """Audio of one utterance (utterance-relative sample indices) and its chunk schedule.

    Chunk k commits frames [kC, (k+1)C); its window is [kC - left, (k+1)C + lookahead) clipped
    to [0, total_frames). While the utterance is open, a chunk is ready once its window's audio
    (and one frame more) has arrived and the window lies before the forced-cut search stretch.
    """

    def __init__(self, index: int, start: int, model: LoadedModel, options: StreamingOptions, decoder):
        self.index = index
        self.start = start  # stream sample (16 kHz) of utterance sample 0
        self.model = model
        self.options = options
        self.decoder = decoder
        self.hop = model.config.hop_samples
        self.field = model.config.receptive_field_samples
        self.audio = SampleBuffer()
        self.announced = False  # SpeechStart emitted
        self.total_frames: Optional[int] = None  # set when the utterance ends
        self.end_sample: Optional[int] = None  # utterance-relative end
        self.end_reason = ""
        self.next_chunk = 0
        self._stats: Optional[tuple[float, float]] = None  # frozen normalisation (mean, std)
        self._cache = FeatureCache(model) if model.config.feat_extract_norm == "layer" else None
        window = options.window
        # the window in this model's frames: 20 ms for every family but w2v-BERT with adapter layers
        self.chunk_frames = max(1, window.chunk_ms * SAMPLES_PER_MS // self.hop)
        self.left_frames = window.left_context_ms * SAMPLES_PER_MS // self.hop
        self.lookahead_frames = window.lookahead_ms * SAMPLES_PER_MS // self.hop
        self._kv = KeyValueCache(self.left_frames) if window.context == "kv_cache" else None
        # conv-feature frames kept before a chunk: its left context, or (kv_cache) the positional conv's
        self.feature_left_frames = self.left_frames if self._kv is None else min(
            self.left_frames, model.config.positional_left_frames)
        max_samples = options.vad.max_utterance_ms * SAMPLES_PER_MS
        self.max_samples = max_samples
        self.search_samples = options.vad.cut_search_ms * SAMPLES_PER_MS
        self.commit_limit_frames = (max_samples - self.search_samples) // self.hop

    @property
    def ended(self) -> bool:
        """True once the end (VAD, endpoint, forced cut, end of stream) is known."""
        return self.total_frames is not None

    def end(self, end_sample: int, reason: str, total_frames: Optional[int] = None) -> None:
        """Close the utterance at utterance sample `end_sample`."""
        self.end_sample = end_sample
        self.end_reason = reason
        self.total_frames = self.model.config.num_frames(end_sample) if total_frames is None else total_frames

    def finished(self) -> bool:
        """Ended, and every chunk committed."""
        return self.ended and self.next_chunk * self.chunk_frames >= self.total_frames

    def committed_frames(self) -> int:
        """Frames committed so far."""
        done = self.next_chunk * self.chunk_frames
        return min(done, self.total_frames) if self.ended else done

    def _window(self) -> Optional[tuple[int, int, int, int]]:
        """(window start, commit start, commit end, window end) in frames of the next chunk, if ready."""
        commit_start = self.next_chunk * self.chunk_frames
        commit_end = commit_start + self.chunk_frames
        window_end = commit_end + self.lookahead_frames
        if self.ended:
            if commit_start >= self.total_frames:
                return None
            commit_end = min(commit_end, self.total_frames)
            window_end = min(window_end, self.total_frames)
        elif (window_end > self.commit_limit_frames
              or self.model.config.num_frames(self.audio.end) <= window_end):
            # One frame beyond the window is required, so an open utterance's chunk is never its
            # last; windows stay out of the cut-search stretch until the cut is known. Both keep a
            # chunk's window the same however the audio was split.
            return None
        return max(0, commit_start - self.left_frames), commit_start, commit_end, window_end

    def make_job(self, stream: int) -> Optional[WindowJob]:
        """The next chunk's window job, or None if it is not ready."""
        window = self._window()
        if window is None:
            return None
        first, commit_start, commit_end, last = window
        if self._stats is None:
            self._freeze_stats()
        sample_end = (last - 1) * self.hop + self.field
        if self.ended and last == self.total_frames:  # the last window takes the utterance's whole tail
            # as offline does (group norm, w2v-BERT statistics), and no audio that was never received
            # (a w2v-BERT input with an odd number of 10 ms frames ends in a half-padded frame)
            sample_end = min(max(sample_end, self.end_sample), self.audio.end)
        if self._cache is not None:
            begin = self._cache.end * self.hop
            if self._cache.end < last:
                self._cache.extend(self._normalise(self.audio.get(begin, sample_end)), begin)
            if self._kv is not None:
                return self._cached_job(stream, commit_start, commit_end, last)
            features = self._cache.get(first, last)
            job = WindowJob(stream, self.index, self.next_chunk, last - first, commit_start - first,
                            commit_end - first, features=features, language=self.model.language)
        else:
            raw = self.audio.get(first * self.hop, sample_end)
            audio = torch.from_numpy(self.model.preprocessing.normalize(raw))
            job = WindowJob(stream, self.index, self.next_chunk, last - first, commit_start - first,
                            commit_end - first,
                            audio=audio.to(self.model.device, self.model.input_dtype), language=self.model.language)
        return job

    def _cached_job(self, stream: int, commit_start: int, commit_end: int, last: int) -> WindowJob:
        """kv_cache window: new frames [commit_start, last), positional-conv left frames, cached K/V."""
        first = max(0, commit_start - self.feature_left_frames)
        return WindowJob(stream, self.index, self.next_chunk, last - commit_start, 0, commit_end - commit_start,
                         features=self._cache.get(commit_start, last),
                         left_features=self._cache.get(first, commit_start), memory=self._kv.stored(),
                         language=self.model.language)

    def state_bytes(self) -> int:
        """Bytes of per-stream state this utterance holds (audio, conv features, cached keys/values)."""
        total = self.audio._data.nbytes
        if self._cache is not None:
            total += self._cache.nbytes
        if self._kv is not None:
            total += self._kv.nbytes
        return total

    def _freeze_stats(self) -> None:
        """Normalisation statistics from the first window's audio (or the whole, shorter, utterance)."""
        length = self.end_sample if self.ended else self.audio.end
        span = min(length, (self.chunk_frames + self.lookahead_frames) * self.hop)
        audio = self.audio.get(0, max(span, 0))
        if audio.size == 0:
            self._stats = (0.0, 1.0)
        else:
            self._stats = (float(audio.mean()), float(np.sqrt(audio.var() + NORM_EPS)))

    def _normalise(self, audio: np.ndarray) -> np.ndarray:
        """Frozen-statistics normalisation (identity if the checkpoint does not normalise)."""
        if not self.model.preprocessing.do_normalize:
            return audio.astype(np.float32, copy=False)
        mean, std = self._stats
        return ((audio - mean) / std).astype(np.float32, copy=False)

    def committed(self, job: Optional[WindowJob] = None) -> None:
        """The next chunk (`job`) was decoded: move on and forget audio/features no longer needed."""
        self.next_chunk += 1
        if self._kv is not None:
            if job is None or job.new_memory is None:
                log.warning("utterance %d chunk %d: no keys/values came back (logits not from run_jobs?); "
                            "the next window starts without cached left context", self.index, self.next_chunk - 1)
                self._kv.clear()
            else:
                self._kv.append(job.new_memory)
                job.new_memory = None
        keep_frame = max(0, self.next_chunk * self.chunk_frames - self.feature_left_frames)
        keep_sample = keep_frame * self.hop
        if self._cache is not None:
            self._cache.discard_before(keep_frame)
            keep_sample = min(keep_sample, self._cache.end * self.hop)
        if not self.ended:
            keep_sample = min(keep_sample, self.max_samples - self.search_samples)
        self.audio.discard_before(keep_sample)

    def needs_cut(self) -> bool:
        """Open and as long as the maximum utterance length."""
        return not self.ended and self.audio.end >= self.max_samples

    def quietest_cut(self) -> int:
        """Utterance sample (frame aligned) starting the lowest-energy frame of the search stretch."""
        first = (self.max_samples - self.search_samples) // self.hop
        frames = self.search_samples // self.hop - 1  # the cut frame must end before max_samples
        audio = self.audio.get(first * self.hop, (first + frames) * self.hop).astype(np.float64)
        energy = (audio.reshape(frames, self.hop) ** 2).sum(axis=1)
        return (first + int(np.argmin(energy))) * self.hop
