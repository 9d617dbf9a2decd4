"""Stacking rows of different lengths into one padded batch (every batched forward pass uses it)."""

from __future__ import annotations

from typing import Sequence

import torch

# batched transformer inputs (conv features, cached keys/values) are padded (and masked: exact) to a
# multiple of this many frames, so that an endless stream meets a bounded set of input shapes:
# oneDNN keeps one primitive per shape in a cache of 1024, and the odd lengths of utterance-final
# windows grew RSS by ~10 MB in an hour
FRAME_BUCKET = 10


def round_up(length: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= length."""
    return -(-length // multiple) * multiple


def pad_batch(rows: Sequence[torch.Tensor], multiple: int = 1, right_align: bool = False,
              dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows (t_i, ...) -> (B, L, ...) zero padded, L = longest rounded up to `multiple`, and the
    (B, L) mask of real entries (None when nothing is padded). right_align puts padding first."""
    first = rows[0]
    length = round_up(max(row.shape[0] for row in rows), multiple)
    batch = first.new_zeros((len(rows), length) + tuple(first.shape[1:]), dtype=dtype or first.dtype)
    mask = torch.zeros((len(rows), length), dtype=torch.bool, device=first.device)
    for i, row in enumerate(rows):
        start = length - row.shape[0] if right_align else 0
        batch[i, start:start + row.shape[0]] = row
        mask[i, start:start + row.shape[0]] = True
    return batch, (None if bool(mask.all()) else mask)
