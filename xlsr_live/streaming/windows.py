"""Model windows: the job a stream hands to the model, cached conv features, batched forward."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional, Sequence

import numpy as np
import torch

from ..model.batching import FRAME_BUCKET, pad_batch
from ..model.loader import LoadedModel
from .kvcache import run_cached

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class WindowJob:
    """One window (left context + chunk + lookahead) of one stream, ready for the transformer.

    Exactly one of `features` (layer-norm models: cached conv features, (T, C) on the model
    device) or `audio` (group-norm models: normalised samples (S,)) is set. kv_cache windows
    (context="kv_cache") hold only their new frames (chunk + lookahead) in `features`, plus
    `left_features` (P, C) for the positional conv and `memory` (cached keys/values per layer,
    (heads, M, d), or None); run_jobs sets `new_memory` (the committed frames' keys/values).
    """

    stream: int  # token of the recognizer and stream generation that made it (logging only)
    utterance: int  # utterance index within the stream (since the last reset)
    chunk: int  # chunk index within the utterance
    num_frames: int  # T: frames of logits the window yields
    commit_start: int  # window frames [commit_start, commit_end) are committed
    commit_end: int
    features: Optional[torch.Tensor] = None
    audio: Optional[torch.Tensor] = None
    left_features: Optional[torch.Tensor] = None  # kv_cache windows only
    memory: Optional[list] = None  # kv_cache windows: per layer (keys, values) (heads, M, d), as stored
    new_memory: Optional[list] = None  # set by run_jobs for kv_cache windows
    language: Optional[str] = None  # MMS: the language of the model that made it (run_jobs groups by it)

    @property
    def cached(self) -> bool:
        """A kv_cache window (new frames only, attending to cached keys/values)."""
        return self.left_features is not None

    @property
    def key(self) -> tuple[int, int, int]:
        """(stream, utterance, chunk), for logs and matching."""
        return self.stream, self.utterance, self.chunk


class FeatureCache:
    """Conv features of one utterance, computed once per frame (exact for layer-norm models).

    Frame i covers normalised samples [hop * i, hop * i + field); new frames are computed from
    the samples they need only (consecutive frames overlap by field - hop = 80 samples).
    """

    def __init__(self, model: LoadedModel):
        self.model = model
        self.hop = model.config.hop_samples
        self.field = model.config.receptive_field_samples
        self.first = 0  # oldest frame kept
        self._chunks: list[torch.Tensor] = []  # (t, C) pieces covering frames [first, end)
        self.end = 0  # frames computed

    @torch.inference_mode()
    def extend(self, normalised: np.ndarray, sample_offset: int) -> None:
        """Compute frames [end, ...) from normalised samples starting at utterance sample `sample_offset`.

        `normalised` must start at or before hop * end; every complete new frame is computed.
        """
        begin = self.hop * self.end - sample_offset
        if begin < 0:
            raise ValueError(f"samples for frame {self.end} start at {sample_offset}, too late")
        audio = normalised[begin:]
        frames = self.model.config.num_frames(len(audio))
        if frames <= 0:
            return
        audio = audio[: (frames - 1) * self.hop + self.field]
        wave = torch.from_numpy(np.ascontiguousarray(audio))[None].to(self.model.device, self.model.dtype)
        features = self.model.model.conv_features(wave)[0]
        self._chunks.append(features)
        self.end += features.shape[0]

    def get(self, start: int, end: int) -> torch.Tensor:
        """Features of frames [start, end) as one (T, C) tensor; consolidates the pieces kept."""
        if not self.first <= start <= end <= self.end:
            raise IndexError(f"frames [{start}, {end}) outside cached [{self.first}, {self.end})")
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks, dim=0)]
        if not self._chunks:
            return torch.zeros((0, self.model.config.conv_dim[-1]), device=self.model.device)
        return self._chunks[0][start - self.first:end - self.first]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached features."""
        return sum(chunk.numel() * chunk.element_size() for chunk in self._chunks)

    def discard_before(self, frame: int) -> None:
        """Forget frames older than `frame` (no longer needed as left context)."""
        frame = min(max(frame, self.first), self.end)
        if frame == self.first or not self._chunks:
            return
        whole = torch.cat(self._chunks, dim=0)
        self._chunks = [whole[frame - self.first:].clone()]
        self.first = frame


@torch.inference_mode()
def run_jobs(model: LoadedModel, jobs: Sequence[WindowJob]) -> list[np.ndarray]:
    """Run several windows (any streams, any lengths) in ONE padded forward pass.

    Layer-norm models: features are zero padded and masked per frame (exact); group-norm models:
    audio is zero padded, no mask (as transformers does for them). Returns float32 (T_i, V).
    """
    if not jobs:
        return []
    cached = [job for job in jobs if job.cached]
    if cached and len(cached) < len(jobs):  # streams with different context modes: two passes
        return _run_groups(jobs, lambda job: job.cached, lambda group: run_jobs(model, group))
    languages = [job.language for job in jobs]
    widths = [len(model.vocab if language is None else model.with_language(language).vocab)
              for language in languages]
    if len(set(languages)) > 1:  # MMS streams in several languages: base layers batched, adapters per row
        model = model.adapters.mixed(model, languages)
    elif languages[0] is not None:
        model = model.with_language(languages[0])  # the model itself when it is that language
    if cached:
        logits = run_cached(model, jobs)
    elif all(job.features is not None for job in jobs):
        logits = _run_features(model, jobs)
    elif all(job.audio is not None for job in jobs):
        logits = _run_audio(model, jobs)
    else:
        raise ValueError("jobs mix cached-feature and audio windows: they come from different models")
    out = []
    for row, job, width in zip(logits, jobs, widths):
        out.append(row[: job.num_frames, :width].float().cpu().numpy())
    return out


def _run_groups(jobs: Sequence[WindowJob], key, run) -> list[np.ndarray]:
    """Run the jobs group by group (same `key`), results back in job order."""
    groups: dict = {}
    for job in jobs:
        groups.setdefault(key(job), []).append(job)
    results = {id(job): out for group in groups.values() for job, out in zip(group, run(group))}
    return [results[id(job)] for job in jobs]


def _run_features(model: LoadedModel, jobs: Sequence[WindowJob]) -> torch.Tensor:
    """Pad conv features to the longest window (rounded up to FRAME_BUCKET), mask padded frames,
    run the transformer."""
    features, mask = pad_batch([job.features for job in jobs], FRAME_BUCKET, dtype=model.dtype)
    return model.model.encode_features(features, mask)


def _run_audio(model: LoadedModel, jobs: Sequence[WindowJob]) -> torch.Tensor:
    """Audio windows: zero-pad to the longest and run the whole model, no bucket. Group-norm models
    without a mask (as transformers feeds them; padding changes their GroupNorm statistics), filter-bank
    models (w2v-BERT, which normalise their features per input) with one: exact."""
    audio, mask = pad_batch([job.audio for job in jobs], dtype=model.input_dtype)
    return model.model(audio, mask if model.uses_attention_mask else None)
