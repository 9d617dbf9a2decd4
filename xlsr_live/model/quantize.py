"""Dynamic int8 quantization of linear layers (used by the loader and by MMS language adapters)."""

from __future__ import annotations

import warnings

import torch


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every linear layer (weights int8, activations quantized per call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager-mode deprecation notice
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
