"""Deepen a trained model without changing what it computes (train.py --layers with --init).

Sessions 12-14 showed the 6-layer demo model underfits: about 1.2 nats of CTC loss per character on
its own training voices whatever the learning rate or regulariser. More layers are the lever; this
module starts them from the trained ones instead of from random weights.

New layer j copies old layer j * old // new. The first copy of each old layer is exact; every further
copy has its two residual outputs (attention.out_proj and feed_forward.output_dense, weights and
biases) set to zero, so with the pre-norm layers of `do_stable_layer_norm` it adds nothing:
x + 0 + 0 = x. The grown model's logits equal the old model's; training then moves the zeroed
outputs first (their gradients are not zero) and the copied inner weights after them.
"""
from __future__ import annotations

import re

import torch

LAYER_KEY = re.compile(r"^(.*\.encoder\.layers\.)(\d+)\.(.+)$")
RESIDUAL_OUTPUTS = ("attention.out_proj.", "feed_forward.output_dense.")


def count_layers(state: dict[str, torch.Tensor]) -> int:
    """Transformer layers in a state dict in transformers' names."""
    found = {int(m.group(2)) for m in map(LAYER_KEY.match, state) if m}
    if not found:
        raise ValueError("no encoder.layers.N.* weights in the state dict")
    return max(found) + 1


def source_layers(old: int, new: int) -> list[int]:
    """For each of `new` layers, the index of the old layer it copies (non-decreasing, all used)."""
    if new < old:
        raise ValueError(f"layers={new}: fewer than the {old} layers of the starting weights")
    return [j * old // new for j in range(new)]


def grow_layers(state: dict[str, torch.Tensor], new: int) -> dict[str, torch.Tensor]:
    """`state` with `new` transformer layers; the extra ones are identity copies (see module doc)."""
    by_layer: dict[int, list[tuple[str, str, torch.Tensor]]] = {}
    out = {}
    for key, value in state.items():
        m = LAYER_KEY.match(key)
        if m:
            by_layer.setdefault(int(m.group(2)), []).append((m.group(1), m.group(3), value))
        else:
            out[key] = value
    sources = source_layers(count_layers(state), new)
    for j, i in enumerate(sources):
        repeat = j > 0 and sources[j - 1] == i
        for prefix, rest, value in by_layer[i]:
            copy = value.clone()
            if repeat and rest.startswith(RESIDUAL_OUTPUTS):
                copy.zero_()
            out[f"{prefix}{j}.{rest}"] = copy
    return out
