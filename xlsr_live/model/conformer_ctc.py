"""The conformer families' parts of the one CTC encoder (encoder.py picks them by config.family).

- Wav2Vec2-Conformer: wav2vec2's conv front end and projection, then `conformer_encoder`:
  conformer layers ("relative" or "rotary" positions, centred depthwise conv + BatchNorm) and a
  final LayerNorm. transformers builds a positional conv for it but never applies it; its tensors
  are ignored at load (Family.ignored).
- Wav2Vec2-BERT: `FilterBankFrontEnd` (features.py) instead of the conv front end, the projection,
  conformer layers ("relative_key" positions by default, causal depthwise conv + LayerNorm), then
  `bert_head`: an optional intermediate FFN and optional adapter layers (strided convs).

Streaming: these encoders have no StreamCache path (relative and rotary positions depend on the
window), so the engine recomputes every window (context="recompute").
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .conformer import DEFAULT_EPS, ConformerEncoder, ConformerLayer, FeedForward, SelfAttention
from .features import FilterBank


def conformer_encoder(config: ModelConfig) -> ConformerEncoder:
    """The family's conformer layers with their position tables (and final LayerNorm for Wav2Vec2-Conformer)."""
    bert = config.filter_bank
    eps = config.layer_norm_eps if bert else DEFAULT_EPS  # Wav2Vec2-Conformer's layers keep torch's default
    layers = [ConformerLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                             config.hidden_act, eps, config.position_embeddings_type,
                             config.conv_depthwise_kernel_size, "causal" if bert else "symmetric",
                             config.left_max_position_embeddings, config.right_max_position_embeddings)
              for _ in range(config.num_hidden_layers)]
    final_norm = None if bert else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    return ConformerEncoder(layers, config.position_embeddings_type,
                            config.hidden_size // config.num_attention_heads, config.rotary_embedding_base,
                            rotary_persistent=not bert, final_norm=final_norm)


class FilterBankFrontEnd(nn.Module):
    """Waveform (B, S) -> normalised stacked filter banks (B, T, 160) and their mask (B, T)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.filter_bank = FilterBank(config.feature_projection_input_dim // 2, 2)

    def forward(self, waveform: torch.Tensor, sample_mask: Optional[torch.Tensor] = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = None if sample_mask is None else sample_mask.long().sum(-1)
        return self.filter_bank(waveform.float(), lengths)

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """Sample-level mask (B, S) -> stacked-frame mask (B, T)."""
        return self.filter_bank.frame_mask(sample_mask.long().sum(-1), sample_mask.shape[-1])


class AdapterLayer(nn.Module):
    """w2v-BERT adapter: strided conv + GLU on a residual and an attention branch, attention, FFN."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width, eps = config.output_hidden_size, config.layer_norm_eps
        kernel, stride = config.adapter_kernel_size, config.adapter_stride
        self.residual_layer_norm = nn.LayerNorm(width, eps=eps)
        self.residual_conv = nn.Conv1d(width, 2 * width, kernel, stride=stride, padding=stride // 2)
        self.self_attn_layer_norm = nn.LayerNorm(width, eps=eps)
        self.self_attn_conv = nn.Conv1d(width, 2 * width, kernel, stride=stride, padding=stride // 2)
        self.self_attn = SelfAttention(width, config.num_attention_heads)
        self.ffn_layer_norm = nn.LayerNorm(width, eps=eps)
        self.ffn = FeedForward(width, config.intermediate_size, config.adapter_act)

    @staticmethod
    def _downsample(x: torch.Tensor, norm: nn.LayerNorm, conv: nn.Conv1d) -> torch.Tensor:
        return F.glu(conv(norm(x).transpose(1, 2)), dim=1).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        residual = self._downsample(x, self.residual_layer_norm, self.residual_conv)
        x = self._downsample(x, self.self_attn_layer_norm, self.self_attn_conv)
        x = self.self_attn(x, key_mask) + residual
        return x + self.ffn(self.ffn_layer_norm(x))


class Adapter(nn.Module):
    """Optional projection to output_hidden_size, then the adapter layers (each divides T by its stride).

    As in transformers, the padded frames of a batch are not zeroed before the strided convs, so with
    adapter layers a padded row is exact only up to the frames next to its padding.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.geometry = config.filter_bank_geometry
        if config.output_hidden_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm = nn.LayerNorm(config.output_hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(AdapterLayer(config) for _ in range(config.num_adapter_layers))

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if hasattr(self, "proj"):
            x = self.proj_layer_norm(self.proj(x))
        # transformers always has a mask here (from its feature extractor) and computes the lengths
        # with kernel // 2 padding while its convs pad stride // 2: the same rule, for parity
        lengths = x.new_full(x.shape[:1], x.shape[1]) if frame_mask is None else frame_mask.sum(-1)
        for layer in self.layers:
            lengths = self.geometry.adapter_lengths(lengths, layers=1, padding="mask")
            frames = self.geometry.adapter_lengths(x.shape[1], layers=1)
            x = layer(x, torch.arange(frames, device=x.device)[None, :] < lengths[:, None])
        return x


def add_bert_head(backbone: nn.Module, config: ModelConfig) -> None:
    """Give the backbone w2v-BERT's optional parts after the encoder (tensors under the backbone prefix)."""
    if config.use_intermediate_ffn_before_adapter:
        backbone.intermediate_ffn = FeedForward(config.hidden_size, config.intermediate_size, "relu")
    if config.add_adapter:
        backbone.adapter = Adapter(config)


def bert_head(backbone: nn.Module, hidden: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Encoder output (B, T, H) -> the CTC head's input: intermediate FFN, adapter layers if present."""
    if hasattr(backbone, "intermediate_ffn"):
        hidden = hidden + 0.5 * backbone.intermediate_ffn(hidden)
    return backbone.adapter(hidden, frame_mask) if hasattr(backbone, "adapter") else hidden


def output_mask(config: ModelConfig, frame_mask: torch.Tensor) -> torch.Tensor:
    """w2v-BERT stacked-frame mask (B, T) -> output-frame mask (B, T') as transformers computes it."""
    geometry = config.filter_bank_geometry
    if not geometry.adapter_layers:
        return frame_mask
    lengths = geometry.adapter_lengths(frame_mask.sum(-1), padding="mask")
    frames = geometry.adapter_lengths(frame_mask.shape[1])
    return torch.arange(frames, device=frame_mask.device)[None, :] < lengths[:, None]
