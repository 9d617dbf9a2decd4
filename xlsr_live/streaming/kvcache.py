"""Cached keys/values of the left context (WindowOptions(context="kv_cache")), batched forward.

Approximate, like Emformer's memory or Transformer-XL: instead of running the transformer again
over the left context of every window, each layer keeps the keys and values its committed frames
had in their own window, and a new window runs the transformer over its new frames (chunk +
lookahead) only, attending to those cached keys/values and to itself. The positional conv still
sees up to num_conv_pos_embeddings // 2 frames before the new ones (their projected features).

Shapes: heads h, d = H / h, M cached frames, N new frames, P positional-conv left frames.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch

from ..model.loader import LoadedModel
from ..model.wav2vec2 import KeyValue

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


def _pad(pieces: Sequence[torch.Tensor], length: int, right_align: bool = False,
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (t_i, ...) pieces into (B, length, ...) zero padded, plus a (B, length) mask of real rows."""
    first = pieces[0]
    batch = first.new_zeros((len(pieces), length) + tuple(first.shape[1:]))
    mask = torch.zeros((len(pieces), length), dtype=torch.bool, device=first.device)
    for i, piece in enumerate(pieces):
        n = piece.shape[0]
        start = length - n if right_align else 0
        batch[i, start:start + n] = piece
        mask[i, start:start + n] = True
    return batch, mask


def _batch_memory(jobs: Sequence, longest: int) -> tuple[Optional[list[KeyValue]], Optional[torch.Tensor]]:
    """Per layer (B, h, M_max, d) keys/values, right padded, and the (B, M_max) mask (None if unpadded)."""
    if longest == 0:
        return None, None
    if len(jobs) == 1:
        return [(k[None], v[None]) for k, v in jobs[0].memory], None
    some = next(job.memory for job in jobs if job.memory is not None)
    layers, mask = [], None
    for layer in range(len(some)):
        keys, values = [], []
        for job in jobs:
            if job.memory is None:
                empty = some[layer][0][:, :0]
                keys.append(empty.transpose(0, 1))
                values.append(empty.transpose(0, 1))
            else:
                keys.append(job.memory[layer][0].transpose(0, 1))  # (M_i, h, d)
                values.append(job.memory[layer][1].transpose(0, 1))
        k, mask = _pad(keys, longest)
        v, _ = _pad(values, longest)
        layers.append((k.transpose(1, 2), v.transpose(1, 2)))  # (B, h, M_max, d)
    return layers, (None if bool(mask.all()) else mask)


def run_cached(model: LoadedModel, jobs: Sequence) -> list[torch.Tensor]:
    """One forward pass over kv_cache windows of any streams; sets each job's `new_memory`.

    Returns logits (B, N_max, V) rows; job.new_memory: per layer (keys, values) (h, n_i, d) of
    the job's committed frames (window frames [0, commit_end)).
    """
    lengths = [job.features.shape[0] for job in jobs]
    lefts = [job.left_features.shape[0] for job in jobs]
    pasts = [0 if job.memory is None else job.memory[0][0].shape[1] for job in jobs]
    if len(jobs) == 1:
        features, left = jobs[0].features[None], jobs[0].left_features[None]
        frame_mask = left_mask = None
    else:
        features, frame_mask = _pad([job.features for job in jobs], max(lengths))
        left, left_mask = _pad([job.left_features for job in jobs], max(lefts), right_align=True)
        frame_mask = None if bool(frame_mask.all()) else frame_mask
        left_mask = None if bool(left_mask.all()) else left_mask
    memory, memory_mask = _batch_memory(jobs, max(pasts))
    logits, new = model.model.encode_cached(features.to(model.dtype), left.to(model.dtype), memory,
                                            frame_mask, left_mask, memory_mask)
    for i, job in enumerate(jobs):
        keep = job.commit_end - job.commit_start
        job.new_memory = [(k[i, :, job.commit_start:job.commit_end], v[i, :, job.commit_start:job.commit_end])
                          for k, v in new] if keep > 0 else None
    return list(logits)
