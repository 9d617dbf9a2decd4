"""Dynamic int8 quantization of linear layers (used by the loader and by MMS language adapters)."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every linear layer (weights int8, activations quantized per call).

    The same modules and weights as `torch.ao.quantization.quantize_dynamic(model, {nn.Linear},
    dtype=torch.qint8)` (per-tensor symmetric weights), built faster: torch's `from_float` first
    packs an all-zero weight of the layer's size and then the real one; here each weight is packed
    once, and layers are quantized on torch's intra-op threads at once (the ops release the GIL).
    """
    with warnings.catch_warnings():  # process-wide: also silences the pool's threads
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        if type(model) is nn.Linear:
            return _quantized_linear(model)
        # (parent, attribute) of every nn.Linear (exactly that type, like quantize_dynamic)
        places = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
                  if type(child) is nn.Linear]
        with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
            quantized = list(pool.map(lambda place: _quantized_linear(getattr(*place)), places))
    for (parent, name), module in zip(places, quantized):
        setattr(parent, name, module)
    return model


def _quantized_linear(linear: nn.Linear) -> nn.Module:
    """One nn.Linear -> torch's dynamic int8 Linear with the same weight quantization as from_float."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import default_dynamic_qconfig

    observer = default_dynamic_qconfig.weight()  # MinMaxObserver, qint8, per-tensor symmetric
    weight = linear.weight.detach().float()
    observer(weight)
    scale, zero_point = observer.calculate_qparams()
    qweight = torch.quantize_per_tensor(weight, float(scale), int(zero_point), torch.qint8)
    quantized = DynamicLinear(1, 1, dtype=torch.qint8)  # a 1 x 1 placeholder weight, replaced below
    quantized.set_weight_bias(qweight, None if linear.bias is None else linear.bias.detach())
    quantized.in_features, quantized.out_features = linear.in_features, linear.out_features
    return quantized
