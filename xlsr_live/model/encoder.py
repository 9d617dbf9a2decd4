"""One CTC encoder assembled from blocks per family: conv features -> transformer -> logits.

Shapes: B batch, S samples, T frames, C conv channels, H hidden, V vocab, h heads, d = H / h;
in streaming (with a StreamCache): P left frames (positional context only), N new frames,
M cached frames whose keys/values the new frames attend to.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import torch
from torch import nn

from . import blocks, conformer_ctc
from .blocks import KeyValue
from .config import ModelConfig


@dataclasses.dataclass
class StreamCache:
    """Streaming context of a window of new frames (approximate, like Transformer-XL's memory).

    The first `left` input frames are context for the positional embedding only; every layer's new
    frames also attend to the keys/values that earlier frames had in their own windows: `rows`, per
    batch row the per-layer (h, M_i, d) cached keys/values (any float dtype, e.g. 16-bit storage;
    None: nothing cached), right-aligned into `past_frames` (M >= every M_i) frames, the padding
    masked by `memory_mask` (B, M) (True = real frame; None: no padding). forward() appends to `new`
    each layer's keys/values of the new frames (B, h, N, d).
    """

    left: int = 0
    rows: Sequence[Sequence[KeyValue] | None] | None = None
    past_frames: int = 0
    memory_mask: torch.Tensor | None = None
    new: list[KeyValue] = dataclasses.field(default_factory=list)
    _workspace: KeyValue | None = dataclasses.field(default=None, repr=False)

    def join(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> KeyValue:
        """Keys and values (B, h, M + N, d) of `layer`: the rows' cached frames, then k, v (B, h, N, d).

        One buffer pair serves every layer of the pass (each layer is done with it before the next
        fills it), and each cached tensor is copied once, converted on the way: no concatenation,
        padding or dtype conversion of its own.
        """
        batch, heads, frames, width = k.shape
        shape = (batch, heads, self.past_frames + frames, width)
        if self._workspace is None or self._workspace[0].shape != shape:
            self._workspace = (k.new_zeros(shape), v.new_zeros(shape))  # the padding stays zero
        keys, values = self._workspace
        end = self.past_frames
        for i, row in enumerate(self.rows or ()):
            if row is not None:
                cached_k, cached_v = row[layer]
                keys[i, :, end - cached_k.shape[1]:end] = cached_k
                values[i, :, end - cached_v.shape[1]:end] = cached_v
        keys[:, :, end:] = k
        values[:, :, end:] = v
        return keys, values


class EncoderLayer(nn.Module):
    """Transformer block; pre-norm ("stable", XLSR / large) or post-norm (base)."""

    def __init__(self, config: ModelConfig, index: int):
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.attention = blocks.attention(config, index)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = blocks.FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # MMS: a language adapter, swapped per language (adapters.py)
        self.adapter_layer = blocks.AttnAdapter(config) if config.adapter_attn_dim is not None else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, join: blocks.JoinPast | None = None,
                bias: torch.Tensor | None = None) -> tuple[torch.Tensor, KeyValue]:
        """x (B, N, H) -> (B, N, H) and its keys/values (see Attention.forward)."""
        if self.pre_norm:
            attended, new = self.attention(self.layer_norm(x), mask, join, bias)
            x = x + attended
            x = x + self.feed_forward(self.final_layer_norm(x))
            return (x if self.adapter_layer is None else x + self.adapter_layer(x)), new
        attended, new = self.attention(x, mask, join, bias)
        x = self.layer_norm(x + attended)
        return self.final_layer_norm(x + self.feed_forward(x)), new


class Encoder(nn.Module):
    """Positional embedding + transformer layers (+ final LayerNorm placement by variant)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.pos_conv_embed = blocks.positional_embedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                cache: StreamCache | None = None) -> torch.Tensor:
        """x (B, P + N, H) -> (B, N, H); mask (B, P + N) True = real frame; P = cache.left (0 without)."""
        left = 0 if cache is None else cache.left
        if mask is not None:
            x = x.masked_fill(~mask[:, :, None], 0.0)
        x = x[:, left:] + self.pos_conv_embed(x, mask, left)  # (B, N, H)
        if not self.pre_norm:
            x = self.layer_norm(x)
        key_mask = _key_mask(x, None if mask is None else mask[:, left:], cache)
        bias = None
        if isinstance(self.layers[0].attention, blocks.GatedRelativeAttention):
            past = 0 if cache is None else cache.past_frames
            bias = self.layers[0].attention.position_bias(x.shape[1], past + x.shape[1])
        for index, layer in enumerate(self.layers):
            join = None if cache is None or cache.past_frames == 0 else functools.partial(cache.join, index)
            x, new = layer(x, key_mask, join, bias)
            if cache is not None:
                cache.new.append(new)
        return self.layer_norm(x) if self.pre_norm else x


def _key_mask(x: torch.Tensor, mask: torch.Tensor | None, cache: StreamCache | None) -> torch.Tensor | None:
    """(B, 1, 1, M + N) True = attend, from the new frames' mask and the memory's; None if all real."""
    memory_mask = None if cache is None else cache.memory_mask
    if mask is None and memory_mask is None:
        return None
    batch, frames = x.shape[:2]
    if mask is None:
        mask = torch.ones((batch, frames), dtype=torch.bool, device=x.device)
    if memory_mask is None:
        past = 0 if cache is None else cache.past_frames
        memory_mask = torch.ones((batch, past), dtype=torch.bool, device=x.device)
    return torch.cat([memory_mask, mask], dim=1)[:, None, None, :]


class Backbone(nn.Module):
    """Feature encoder, projection and transformer encoder (transformers' `wav2vec2.`, `hubert.` ... prefix)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.filter_bank:  # w2v-BERT: filter banks made from the waveform, no conv encoder
            self.front_end = conformer_ctc.FilterBankFrontEnd(config)
        else:
            self.feature_extractor = blocks.FeatureEncoder(config)
        self.feature_projection = blocks.FeatureProjection(config)
        self.encoder = Encoder(config) if config.family.layer == "transformer" else conformer_ctc.conformer_encoder(config)
        if config.filter_bank:
            conformer_ctc.add_bert_head(self, config)  # intermediate FFN, adapter layers if configured


class CTCModel(nn.Module):
    """Encoder with a linear CTC head; split into conv features and the rest so streaming can cache them."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.add_module(config.family.prefix, Backbone(config))
        self.lm_head = nn.Linear(config.head_input_size, config.vocab_size)

    @property
    def backbone(self) -> Backbone:
        """The encoder under its family's name (`self.wav2vec2`, `self.hubert` ...)."""
        return getattr(self, self.config.family.prefix)

    def conv_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Normalised waveform (B, S) -> conv features (B, T, C)."""
        return self.backbone.feature_extractor(waveform).transpose(1, 2)

    def encode_features(self, features: torch.Tensor, frame_mask: torch.Tensor | None = None,
                        cache: StreamCache | None = None) -> torch.Tensor:
        """Conv features (B, P + N, C) -> CTC logits (B, N, V) of the frames after cache.left.

        frame_mask (B, P + N) marks real frames (None: all real); cache: see StreamCache.
        """
        hidden = self.backbone.encoder(self.backbone.feature_projection(features), frame_mask, cache)
        if self.config.filter_bank:
            hidden = conformer_ctc.bert_head(self.backbone, hidden, frame_mask)
        return self.lm_head(hidden)

    def fuse_qkv(self) -> None:
        """Fuse every attention layer's q/k/v projections into one linear layer (exact). Conformer
        layers keep theirs (rotary positions rotate the q/k input only)."""
        if self.config.family.layer != "transformer":
            return
        for layer in self.backbone.encoder.layers:
            layer.attention.fuse_qkv()

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """Sample-level mask (B, S) of real audio -> frame-level mask (B, T)."""
        if self.config.filter_bank:
            return conformer_ctc.output_mask(self.config, self.backbone.front_end.frame_mask(sample_mask))
        lengths = sample_mask.long().sum(-1)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        frames = self.config.num_frames(sample_mask.shape[-1])
        return torch.arange(frames, device=sample_mask.device)[None, :] < lengths[:, None]

    def forward(self, waveform: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised waveform (B, S) -> CTC logits (B, T, V). Filter-bank models (w2v-BERT) take the
        raw waveform in float32 (LoadedModel.input_dtype) and normalise their features per input."""
        if self.config.filter_bank:
            features, frame_mask = self.backbone.front_end(waveform, sample_mask)
            features = features.to(self.backbone.feature_projection.layer_norm.weight.dtype)
            return self.encode_features(features, None if bool(frame_mask.all()) else frame_mask)
        frame_mask = None if sample_mask is None else self.frame_mask(sample_mask)
        return self.encode_features(self.conv_features(waveform), frame_mask)
