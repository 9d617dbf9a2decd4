"""Wav2Vec2-Conformer and Wav2Vec2-BERT CTC models assembled from the conformer blocks.

- Wav2Vec2ConformerForCTC: wav2vec2's conv feature encoder and projection, conformer layers
  ("relative" or "rotary" positions, centred depthwise conv + BatchNorm), final LayerNorm.
  transformers builds a positional conv embedding for it but never applies it; its tensors
  are ignored at load.
- Wav2Vec2BertForCTC: 160-dim stacked log-mel filter banks (features.py), projection, conformer
  layers ("relative_key" positions by default, causal depthwise conv + LayerNorm), an optional
  intermediate FFN and optional adapter layers (conv downsampling), CTC head.

Both expose the interface the engine uses on Wav2Vec2ForCTC: forward(waveform, sample_mask),
frame_mask(sample_mask), encode_features(features, frame_mask), fuse_qkv().
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .conformer import DEFAULT_EPS, ConformerEncoder, ConformerLayer, FeedForward, SelfAttention
from .conformer_config import BertConfig, ConformerConfig
from .features import FilterBank
from .wav2vec2 import FeatureEncoder, FeatureProjection


class _CTCInterface(nn.Module):
    """What the engine calls on every family, in terms of features -> logits."""

    ignored_prefixes: tuple[str, ...] = ()
    supports_kv_cache = False  # relative/rotary positions depend on the window: streaming recomputes

    def encode_features(self, features: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def fuse_qkv(self) -> None:
        """No-op: rotary positions rotate the q/k input only, so the projections stay separate."""


class ConformerModel(nn.Module):
    """transformers' `wav2vec2_conformer.` prefix."""

    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        width = config.hidden_size
        layers = [ConformerLayer(width, config.num_attention_heads, config.intermediate_size, config.hidden_act,
                                 DEFAULT_EPS, config.position_embeddings_type, config.conv_depthwise_kernel_size,
                                 "symmetric") for _ in range(config.num_hidden_layers)]
        self.encoder = ConformerEncoder(layers, config.position_embeddings_type,
                                        width // config.num_attention_heads, config.rotary_embedding_base,
                                        rotary_persistent=True,
                                        final_norm=nn.LayerNorm(width, eps=config.layer_norm_eps))


class Wav2Vec2ConformerForCTC(_CTCInterface):
    """Waveform (B, S) -> CTC logits (B, T, V), T = S // 320 roughly."""

    ignored_prefixes = ("wav2vec2_conformer.masked_spec_embed", "wav2vec2_conformer.encoder.pos_conv_embed.")

    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.config = config
        self.wav2vec2_conformer = ConformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def conv_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Normalised waveform (B, S) -> conv features (B, T, C)."""
        return self.wav2vec2_conformer.feature_extractor(waveform).transpose(1, 2)

    def encode_features(self, features: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Conv features (B, T, C) -> logits (B, T, V); frame_mask (B, T) marks real frames."""
        hidden = self.wav2vec2_conformer.feature_projection(features)
        return self.lm_head(self.wav2vec2_conformer.encoder(hidden, frame_mask))

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """Sample-level mask (B, S) of real audio -> frame-level mask (B, T)."""
        lengths = sample_mask.long().sum(-1)
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        frames = self.config.num_frames(sample_mask.shape[-1])
        return torch.arange(frames, device=sample_mask.device)[None, :] < lengths[:, None]

    def forward(self, waveform: torch.Tensor, sample_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        frame_mask = None if sample_mask is None else self.frame_mask(sample_mask)
        return self.encode_features(self.conv_features(waveform), frame_mask)


class AdapterLayer(nn.Module):
    """w2v-BERT adapter: strided conv + GLU on a residual and an attention branch, attention, FFN."""

    def __init__(self, config: BertConfig):
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

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        residual = self._downsample(x, self.residual_layer_norm, self.residual_conv)
        x = self._downsample(x, self.self_attn_layer_norm, self.self_attn_conv)
        x = self.self_attn(x, key_mask) + residual
        return x + self.ffn(self.ffn_layer_norm(x))


class Adapter(nn.Module):
    """Optional projection to output_hidden_size, then the adapter layers (each divides T by its stride)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        if config.output_hidden_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm = nn.LayerNorm(config.output_hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(AdapterLayer(config) for _ in range(config.num_adapter_layers))

    def forward(self, x: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
        if hasattr(self, "proj"):
            x = self.proj_layer_norm(self.proj(x))
        if frame_mask is None:  # transformers always gets a mask from the feature extractor
            frame_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        lengths = frame_mask.sum(-1)
        for layer in self.layers:
            # as transformers: lengths assume kernel // 2 padding, the convs pad stride // 2
            lengths = self.config.adapter_lengths(lengths, layers=1)
            frames = self.config.adapter_lengths(x.shape[1], layers=1, padding="conv")
            x = layer(x, torch.arange(frames, device=x.device)[None, :] < lengths[:, None])
        return x


class BertModel(nn.Module):
    """transformers' `wav2vec2_bert.` prefix."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.feature_projection = FeatureProjection(config)
        layers = [ConformerLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                 config.hidden_act, config.layer_norm_eps, config.position_embeddings_type,
                                 config.conv_depthwise_kernel_size, "causal", config.left_max_position_embeddings,
                                 config.right_max_position_embeddings) for _ in range(config.num_hidden_layers)]
        self.encoder = ConformerEncoder(layers, config.position_embeddings_type,
                                        config.hidden_size // config.num_attention_heads,
                                        config.rotary_embedding_base, rotary_persistent=False)
        if config.use_intermediate_ffn_before_adapter:
            self.intermediate_ffn = FeedForward(config.hidden_size, config.intermediate_size, "relu")
        if config.add_adapter:
            self.adapter = Adapter(config)


class Wav2Vec2BertForCTC(_CTCInterface):
    """Waveform (B, S) -> filter banks (B, T, 160) at 50 Hz -> CTC logits (B, T', V)."""

    ignored_prefixes = ("wav2vec2_bert.masked_spec_embed",)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.filter_bank = FilterBank(config.num_mel_bins, config.stack_frames)
        self.wav2vec2_bert = BertModel(config)
        out = config.output_hidden_size if config.add_adapter else config.hidden_size
        self.lm_head = nn.Linear(out, config.vocab_size)

    def features(self, waveform: torch.Tensor, sample_mask: Optional[torch.Tensor] = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform (B, S) -> normalised stacked filter banks (B, T, 160) and their mask (B, T)."""
        lengths = None if sample_mask is None else sample_mask.long().sum(-1)
        features, mask = self.filter_bank(waveform, lengths)
        return features.to(self.wav2vec2_bert.feature_projection.layer_norm.weight.dtype), mask

    def encode_features(self, features: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Stacked filter banks (B, T, 160) -> logits (B, T', V) (T' < T with adapter layers)."""
        model = self.wav2vec2_bert
        hidden = model.encoder(model.feature_projection(features), frame_mask)
        if hasattr(model, "intermediate_ffn"):
            hidden = hidden + 0.5 * model.intermediate_ffn(hidden)
        if hasattr(model, "adapter"):
            hidden = model.adapter(hidden, frame_mask)
        return self.lm_head(hidden)

    def frame_mask(self, sample_mask: torch.Tensor) -> torch.Tensor:
        """Sample-level mask (B, S) -> output-frame mask (B, T') as transformers computes it."""
        frames = self.filter_bank.frame_mask(sample_mask.long().sum(-1), sample_mask.shape[-1])
        if not self.config.add_adapter:
            return frames
        lengths = self.config.adapter_lengths(frames.sum(-1))
        total = self.config.adapter_lengths(frames.shape[1], padding="conv")
        return torch.arange(total, device=sample_mask.device)[None, :] < lengths[:, None]

    def forward(self, waveform: torch.Tensor, sample_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Raw (not normalised) waveform (B, S) in [-1, 1], float32 whatever the model's dtype (see
        LoadedModel.input_dtype) -> logits; features normalised per input."""
        features, mask = self.features(waveform, sample_mask)
        return self.encode_features(features, None if bool(mask.all()) else mask)


FAMILIES = {"wav2vec2-conformer": (ConformerConfig, Wav2Vec2ConformerForCTC),
            "wav2vec2-bert": (BertConfig, Wav2Vec2BertForCTC)}


def build(raw: dict, preprocessor: dict, source: str) -> Optional[nn.Module]:
    """The (meta-device-ready) model for a conformer-family config.json, or None for other families."""
    if raw.get("model_type") not in FAMILIES:
        return None
    config_class, model_class = FAMILIES[raw["model_type"]]
    if config_class is BertConfig:
        return model_class(BertConfig.from_dict(raw, source, preprocessor))
    return model_class(config_class.from_dict(raw, source))
