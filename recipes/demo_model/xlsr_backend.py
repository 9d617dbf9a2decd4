"""Training without transformers: xlsr-live's plain-torch CTC model (wav2vec2 family) plus a CTC loss.

train.py uses this when transformers is not installed (for example a stock GPU image with only
torch): same parameters, same logits; no dropout; SpecAugment masks only when asked for
(`Masking`, train.py --mask-time-prob / --mask-feature-prob; the package's runtime module is
inference code). State dicts are read and written in transformers' naming (the positional conv's
weight-norm pair g, v), so checkpoints stay interchangeable with the transformers backend and
export.py.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
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


MASK_EMBED = "wav2vec2.masked_spec_embed"


@dataclass(frozen=True)
class Masking:
    """SpecAugment on the projected features while training, as transformers' Wav2Vec2 does
    (`_compute_mask_indices`): per sequence int(prob * length / span + U(0, 1)) spans of `span` frames
    (time; at least `time_min` of them) or channels (features), starts drawn uniformly, overlaps allowed.
    Masked frames become the checkpoint's `masked_spec_embed` vector (kept fixed here), masked channels 0."""

    time_prob: float = 0.0
    time_span: int = 10
    time_min: int = 2
    feature_prob: float = 0.0
    feature_span: int = 64

    def __post_init__(self):
        for name in ("time_prob", "feature_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Masking.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.time_span < 1 or self.feature_span < 1:
            raise ValueError(f"Masking spans must be >= 1 frame/channel, got {self.time_span}, {self.feature_span}")

    @property
    def active(self) -> bool:
        return self.time_prob > 0 or self.feature_prob > 0

    def apply(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None, embed: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H) -> the same with time spans replaced by embed (H,) and channel spans zeroed."""
        b, t, h = hidden.shape
        lengths = frame_mask.sum(-1).tolist() if frame_mask is not None else [t] * b
        if self.time_prob > 0:
            spans = span_mask(lengths, t, self.time_prob, self.time_span, self.time_min, hidden.device)
            hidden = torch.where(spans[..., None], embed.to(hidden.device, hidden.dtype), hidden)
        if self.feature_prob > 0:
            spans = span_mask([h] * b, h, self.feature_prob, self.feature_span, 0, hidden.device)
            hidden = hidden.masked_fill(spans[:, None, :], 0.0)
        return hidden


def span_mask(lengths: list[int], size: int, prob: float, span: int, min_spans: int,
              device: torch.device) -> torch.Tensor:
    """(B, size) bool: for row i, spans of `span` positions inside its first lengths[i] (torch's RNG)."""
    out = torch.zeros(len(lengths), size, dtype=torch.bool)
    for i, n in enumerate(lengths):
        if n <= span:
            continue  # shorter than one span: left unmasked (transformers shortens the span instead)
        count = max(min_spans, int(prob * n / span + torch.rand(()).item()))
        count = min(count, n // span)
        for start in torch.randint(0, n - span + 1, (count,)).tolist():
            out[i, start:start + span] = True
    return out.to(device)


class XlsrCTC(nn.Module):
    """Wav2Vec2ForCTC-like wrapper: forward(input_values, attention_mask, labels) -> .logits, .loss."""

    def __init__(self, config: dict, masking: Masking = Masking()):
        super().__init__()
        self.net = CTCModel(ModelConfig.from_dict(dict(config, model_type="wav2vec2")))
        self.masking = masking
        self.extra: dict[str, torch.Tensor] = {}  # transformers-only tensors kept for the export

    def forward(self, input_values=None, attention_mask=None, labels=None, features=None):
        """Normalised audio (B, S), or its conv features (B, T, C) computed elsewhere (train.py
        --features-in-workers: the frozen conv encoder runs in the data workers), -> logits, loss."""
        frame_mask = None if attention_mask is None else self.net.frame_mask(attention_mask.bool())
        if features is None:  # CTCModel.forward's two halves (a wav2vec2 model has no filter bank)
            features = self.net.conv_features(input_values)
        if self.training and self.masking.active:  # encode_features with SpecAugment in between
            hidden = self.net.backbone.feature_projection(features)
            hidden = self.masking.apply(hidden, frame_mask, self.mask_embed(hidden.shape[-1]))
            logits = self.net.lm_head(self.net.backbone.encoder(hidden, frame_mask, None))
        else:
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

    def mask_embed(self, hidden: int) -> torch.Tensor:
        """The checkpoint's masked_spec_embed (H,), zeros where the checkpoint has none."""
        embed = self.extra.get(MASK_EMBED)
        return embed if embed is not None else torch.zeros(hidden)

    def load_hf_state_dict(self, state: dict):
        # half-precision weights (train.py --best-weights) are widened before the weight-norm fold
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        self.extra = {k: v for k, v in state.items() if k == MASK_EMBED}
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
