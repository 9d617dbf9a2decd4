"""Training without transformers: xlsr-live's plain-torch CTC model (wav2vec2 family) plus a CTC loss.

train.py uses this when transformers is not installed (for example a stock GPU image with only
torch): same parameters, same logits; no dropout and no SpecAugment time masks (the package's
runtime module is inference code). State dicts are read and written in transformers' naming
(the positional conv's weight-norm pair g, v), so checkpoints stay interchangeable with the
transformers backend and export.py.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from xlsr_live.model.checkpoint import fold_weight_norm, read_state_dict  # noqa: E402
from xlsr_live.model.config import ModelConfig  # noqa: E402
from xlsr_live.model.encoder import CTCModel  # noqa: E402

POS = "wav2vec2.encoder.pos_conv_embed.conv."
G, V = POS + "parametrizations.weight.original0", POS + "parametrizations.weight.original1"


class XlsrCTC(nn.Module):
    """Wav2Vec2ForCTC-like wrapper: forward(input_values, attention_mask, labels) -> .logits, .loss."""

    def __init__(self, config: dict):
        super().__init__()
        self.net = CTCModel(ModelConfig.from_dict(dict(config, model_type="wav2vec2")))
        self.extra: dict[str, torch.Tensor] = {}  # transformers-only tensors kept for the export

    def forward(self, input_values=None, attention_mask=None, labels=None, features=None):
        """Normalised audio (B, S), or its conv features (B, T, C) computed elsewhere (train.py
        --features-in-workers: the frozen conv encoder runs in the data workers), -> logits, loss."""
        frame_mask = None if attention_mask is None else self.net.frame_mask(attention_mask.bool())
        if features is None:  # CTCModel.forward's two halves (a wav2vec2 model has no filter bank)
            features = self.net.conv_features(input_values)
        logits = self.net.encode_features(features, frame_mask)
        loss = None
        if labels is not None:
            frames = (frame_mask.sum(-1) if frame_mask is not None
                      else torch.full((logits.shape[0],), logits.shape[1], device=logits.device))
            valid = labels >= 0
            logp = F.log_softmax(logits.float(), -1).transpose(0, 1)
            loss = F.ctc_loss(logp, labels[valid], frames, valid.sum(-1), blank=0, reduction="mean",
                              zero_infinity=True)
        return SimpleNamespace(logits=logits, loss=loss)

    def load_hf_state_dict(self, state: dict):
        # half-precision weights (train.py --best-weights) are widened before the weight-norm fold
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        self.extra = {k: v for k, v in state.items() if k == "wav2vec2.masked_spec_embed"}
        folded = fold_weight_norm({k: v for k, v in state.items() if k not in self.extra})
        self.net.load_state_dict(folded)

    def hf_state_dict(self) -> dict:
        """State dict in transformers' names: weight -> (g = |w| over all dims but 2, v = w)."""
        out = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        w = out.pop(POS + "weight")
        out[G] = w.float().pow(2).sum(dim=(0, 1), keepdim=True).sqrt().to(w.dtype)
        out[V] = w
        out.update({k: v.clone() for k, v in self.extra.items()})
        return out


def load_init(model: XlsrCTC, path: str):
    """Weights from an exported model directory or a train.py checkpoint."""
    if os.path.isdir(path):
        from pathlib import Path

        model.load_hf_state_dict(read_state_dict(Path(path)))
    else:
        model.load_hf_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
