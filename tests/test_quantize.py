"""xlsr-live's int8 quantization builds exactly what torch's quantize_dynamic builds."""

import copy
import warnings

import torch

from xlsr_live.model import load_model
from xlsr_live.model.quantize import quantize_int8


def _weights(model: torch.nn.Module) -> dict:
    """Every dynamic int8 linear layer's (int8 weight, scale, zero point, bias) by module name."""
    found = {}
    for name, module in model.named_modules():
        if type(module).__name__ == "Linear" and hasattr(module, "_weight_bias"):
            weight, bias = module._weight_bias()
            found[name] = (weight.int_repr(), weight.q_scale(), weight.q_zero_point(), bias,
                           module.in_features, module.out_features)
    return found


def test_quantize_int8_equals_quantize_dynamic(tiny_model_dir):
    """Same layers, same int8 weights, scales and biases, and bit-identical logits as torch's quantize_dynamic."""
    model = load_model(tiny_model_dir).model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    mine = quantize_int8(copy.deepcopy(model))
    expected, got = _weights(theirs), _weights(mine)
    assert len(expected) > 10 and got.keys() == expected.keys()
    for name, (weight, scale, zero, bias, fan_in, fan_out) in expected.items():
        weight2, scale2, zero2, bias2, fan_in2, fan_out2 = got[name]
        assert torch.equal(weight, weight2) and (scale, zero, fan_in, fan_out) == (scale2, zero2, fan_in2, fan_out2)
        assert (bias is None and bias2 is None) or torch.equal(bias, bias2)
    audio = torch.randn(1, 8000)
    with torch.inference_mode():
        assert torch.equal(mine(audio), theirs(audio))
    assert not any(type(m) is torch.nn.Linear for m in mine.modules())
