"""Cached keys/values of the left context (WindowOptions(context="kv_cache")), batched forward.

Approximate, like Emformer's memory or Transformer-XL: instead of running the transformer again
over the left context of every window, each layer keeps the keys and values its committed frames
had in their own window, and a new window runs the transformer over its new frames (chunk +
lookahead) only, attending to those cached keys/values and to itself. The positional conv still
sees up to config.positional_left_frames frames before the new ones (their projected features).

Shapes: heads h, d = H / h, M cached frames, N new frames, P positional-conv left frames.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch

from ..model.batching import FRAME_BUCKET, pad_batch, round_up
from ..model.blocks import KeyValue
from ..model.encoder import StreamCache
from ..model.loader import LoadedModel

log = logging.getLogger(__name__)


class KeyValueCache:
    """Per layer, the keys and values (h, M, d) of the last `max_frames` committed frames.

    float32 keys/values are stored in `storage_dtype` (float16 by default: half the per-stream memory, e.g. 0.9 instead
    of 1.8 MB for the demo model's 3 s; a relative rounding of 5e-4, far below the approximation
    of caching itself, docs/performance.md) and handed out in the dtype they were computed in.
    """

    def __init__(self, max_frames: int, storage_dtype: Optional[torch.dtype] = torch.float16):
        if max_frames < 0:
            raise ValueError(f"max_frames={max_frames!r} must be >= 0")
        self.max_frames = max_frames
        self.storage_dtype = storage_dtype
        self._dtype: Optional[torch.dtype] = None  # the dtype keys/values were computed in
        self._layers: Optional[list[KeyValue]] = None

    @property
    def frames(self) -> int:
        """M: cached frames (the same for every layer)."""
        return 0 if self._layers is None else self._layers[0][0].shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached tensors."""
        if self._layers is None:
            return 0
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self._layers)

    def stored(self) -> Optional[list[KeyValue]]:
        """Per layer (keys, values) (h, M, d) as stored (no copy; StreamCache.join converts them
        while placing them); None while empty. Later appends leave these tensors unchanged."""
        return self._layers

    def memory(self) -> Optional[list[KeyValue]]:
        """Per layer (keys, values) (h, M, d) in the computing dtype, oldest frame first; None while empty."""
        if self._layers is None or self._layers[0][0].dtype == self._dtype:
            return self._layers
        return [(k.to(self._dtype), v.to(self._dtype)) for k, v in self._layers]

    def append(self, new: list[KeyValue]) -> None:
        """Add committed frames' keys/values (h, n, d) per layer; keep the last max_frames."""
        if self.max_frames == 0:
            return
        self._dtype = new[0][0].dtype
        if self.storage_dtype is not None and self._dtype == torch.float32:  # 16-bit compute: kept as is
            new = [(k.to(self.storage_dtype), v.to(self.storage_dtype)) for k, v in new]
        if self._layers is None:
            merged = [(k[:, -self.max_frames:].clone(), v[:, -self.max_frames:].clone()) for k, v in new]
        else:
            merged = [(torch.cat([old_k, k], dim=1)[:, -self.max_frames:],
                       torch.cat([old_v, v], dim=1)[:, -self.max_frames:])
                      for (old_k, old_v), (k, v) in zip(self._layers, new)]
        self._layers = merged

    def clear(self) -> None:
        """Forget everything (the next window has no cached left context)."""
        self._layers = None


def _memory_mask(lengths: list[int], frames: int, device: torch.device) -> Optional[torch.Tensor]:
    """(B, M) True = real cached frame (rows of `lengths` right-aligned into M = `frames`); None when
    no row is padded."""
    if all(length == frames for length in lengths):
        return None
    positions = torch.arange(frames, device=device)
    return positions[None, :] >= torch.tensor([frames - n for n in lengths], device=device)[:, None]


def run_cached(model: LoadedModel, jobs: Sequence) -> list[torch.Tensor]:
    """One forward pass over kv_cache windows of any streams; sets each job's `new_memory`.

    Every input is padded to a multiple of FRAME_BUCKET frames (masked: exact): the left frames
    and the cached keys/values before the real ones, the new frames after them. Returns logits
    (B, N, V) rows; job.new_memory: per layer (keys, values) (h, n_i, d) of the job's committed
    frames (window frames [0, commit_end)).
    """
    features, frame_mask = pad_batch([job.features for job in jobs], FRAME_BUCKET, dtype=model.dtype)
    left, left_mask = pad_batch([job.left_features for job in jobs], FRAME_BUCKET, right_align=True,
                                dtype=model.dtype)
    mask = None
    if frame_mask is not None or left_mask is not None:
        ones = features.new_ones(features.shape[:2], dtype=torch.bool)
        mask = torch.cat([left.new_ones(left.shape[:2], dtype=torch.bool) if left_mask is None else left_mask,
                          ones if frame_mask is None else frame_mask], dim=1)  # (B, P + N)
    lengths = [0 if job.memory is None else job.memory[0][0].shape[1] for job in jobs]  # M_i
    past = round_up(max(lengths), FRAME_BUCKET)
    cache = StreamCache(left=left.shape[1], rows=[job.memory for job in jobs], past_frames=past,
                        memory_mask=_memory_mask(lengths, past, features.device) if past else None)
    logits = model.model.encode_features(torch.cat([left, features], dim=1), mask, cache)
    for i, job in enumerate(jobs):
        keep = job.commit_end - job.commit_start
        job.new_memory = [(k[i, :, job.commit_start:job.commit_end], v[i, :, job.commit_start:job.commit_end])
                          for k, v in cache.new] if keep > 0 else None
    return list(logits)
