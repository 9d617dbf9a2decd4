"""Configs of the conformer families (field names and defaults follow transformers' config.json)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import torch

from .conformer import ACTIVATIONS, POSITIONS
from .config import UnsupportedModelError, Wav2Vec2Config
from .features import FRAME_SAMPLES, HOP_SAMPLES, num_fbank_frames


def _fields(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `raw` that are fields of the dataclass `cls`, sequences as tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}


def _check_common(raw: Mapping[str, Any], source: str, model_type: str, head: str) -> None:
    """Refuse what the conformer families' runtime does not implement."""
    if raw.get("model_type") != model_type:
        raise UnsupportedModelError(f"{source}: model_type {raw.get('model_type')!r} is not {model_type!r}")
    architectures = raw.get("architectures") or [head]
    if head not in architectures:
        raise UnsupportedModelError(f"{source}: architectures {architectures} has no {head} head; "
                                    "xlsr-live runs CTC fine-tuned checkpoints only")
    if raw.get("position_embeddings_type") not in POSITIONS:
        raise UnsupportedModelError(f"{source}: position_embeddings_type {raw.get('position_embeddings_type')!r} "
                                    f"is not supported; supported: {POSITIONS}")
    for key in ("hidden_act", "adapter_act", "feat_extract_activation"):
        if key in raw and raw[key] not in ACTIVATIONS:
            raise UnsupportedModelError(f"{source}: {key} {raw[key]!r} is not supported; "
                                        f"supported: {sorted(ACTIVATIONS)}")
    if raw.get("use_weighted_layer_sum"):
        raise UnsupportedModelError(f"{source}: use_weighted_layer_sum=true is not supported")
    if raw.get("hidden_size", 1) % raw.get("num_attention_heads", 1):
        raise UnsupportedModelError(f"{source}: hidden_size {raw['hidden_size']} is not a multiple of "
                                    f"num_attention_heads {raw['num_attention_heads']}")
    if raw.get("conv_depthwise_kernel_size", 31) % 2 == 0:
        raise UnsupportedModelError(f"{source}: conv_depthwise_kernel_size "
                                    f"{raw['conv_depthwise_kernel_size']} must be odd")


@dataclasses.dataclass(frozen=True)
class ConformerConfig(Wav2Vec2Config):
    """Wav2Vec2ConformerForCTC: wav2vec2's conv front end, conformer layers."""

    hidden_act: str = "gelu"
    position_embeddings_type: str | None = "relative"
    rotary_embedding_base: float = 10000.0
    max_source_positions: int = 5000
    conv_depthwise_kernel_size: int = 31

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json") -> "ConformerConfig":
        """Validate a transformers Wav2Vec2ConformerConfig dict."""
        _check_common(raw, source, "wav2vec2-conformer", "Wav2Vec2ConformerForCTC")
        if raw.get("feat_extract_norm", "group") not in ("group", "layer"):
            raise UnsupportedModelError(f"{source}: feat_extract_norm {raw['feat_extract_norm']!r} is not "
                                        "supported; supported: ('group', 'layer')")
        if raw.get("add_adapter"):
            raise UnsupportedModelError(f"{source}: add_adapter=true is not supported for wav2vec2-conformer")
        config = cls(**_fields(cls, raw))
        if not len(config.conv_dim) == len(config.conv_kernel) == len(config.conv_stride):
            raise UnsupportedModelError(f"{source}: conv_dim, conv_kernel and conv_stride have different lengths")
        return config


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Wav2Vec2BertForCTC: stacked filter banks, conformer layers, optional adapter layers."""

    vocab_size: int = 32
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    feature_projection_input_dim: int = 160
    hidden_act: str = "swish"
    layer_norm_eps: float = 1e-5
    position_embeddings_type: str | None = "relative_key"
    rotary_embedding_base: float = 10000.0
    max_source_positions: int = 5000
    left_max_position_embeddings: int = 64
    right_max_position_embeddings: int = 8
    conv_depthwise_kernel_size: int = 31
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 1
    adapter_act: str = "relu"
    use_intermediate_ffn_before_adapter: bool = False
    output_hidden_size: int = 1024
    pad_token_id: int = 0
    num_mel_bins: int = 80  # from preprocessor_config.json
    stack_frames: int = 2  # the feature extractor's `stride`

    # what the streaming engine asks of every config
    feat_extract_norm = "filter_bank"  # not "layer": windows carry audio, features are made per window

    @property
    def conv_dim(self) -> tuple[int, ...]:
        """Width of the features entering the projection (FeatureProjection reads conv_dim[-1])."""
        return (self.feature_projection_input_dim,)

    @property
    def hop_samples(self) -> int:
        """Samples between two output frames: 320 (50 Hz), times the adapter strides."""
        hop = HOP_SAMPLES * self.stack_frames
        return hop * self.adapter_stride ** self.num_adapter_layers if self.add_adapter else hop

    @property
    def receptive_field_samples(self) -> int:
        """Samples of the shortest input that yields one output frame made of whole stacked frames
        (560: two 25 ms frames 10 ms apart; more with adapter layers). Windows of n frames take
        (n - 1) * hop_samples + this many samples."""
        stacked = 1
        while self.add_adapter and self.adapter_lengths(stacked, padding="conv") < 1:
            stacked += 1
        return FRAME_SAMPLES + (self.stack_frames * stacked - 1) * HOP_SAMPLES

    def adapter_lengths(self, lengths, layers: int | None = None, padding: str = "mask"):
        """Frames after `layers` adapter layers (all by default): "conv" = what the convs output,
        "mask" = transformers' attention-mask lengths (computed with kernel // 2 padding)."""
        kernel, stride = self.adapter_kernel_size, self.adapter_stride
        pad = stride // 2 if padding == "conv" else kernel // 2
        for _ in range(self.num_adapter_layers if layers is None else layers):
            if isinstance(lengths, torch.Tensor):
                lengths = torch.floor((lengths + 2 * pad - kernel) / stride + 1)
            else:
                lengths = max(math.floor((lengths + 2 * pad - kernel) / stride) + 1, 0)
        return lengths

    def num_frames(self, num_samples: int) -> int:
        """Output frames (logits) for an input of `num_samples` samples."""
        frames = math.ceil(num_fbank_frames(num_samples) / self.stack_frames)
        if self.add_adapter and frames:
            frames = self.adapter_lengths(frames, padding="conv")
        return frames

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json",
                  preprocessor: Mapping[str, Any] | None = None) -> "BertConfig":
        """Validate a transformers Wav2Vec2BertConfig dict (and the feature extractor's settings)."""
        _check_common(raw, source, "wav2vec2-bert", "Wav2Vec2BertForCTC")
        preprocessor = preprocessor or {}
        kind = preprocessor.get("feature_extractor_type", "SeamlessM4TFeatureExtractor")
        if kind != "SeamlessM4TFeatureExtractor":
            raise UnsupportedModelError(f"{source}: feature_extractor_type {kind!r}; supported: "
                                        "SeamlessM4TFeatureExtractor")
        fields = _fields(cls, raw)
        fields["num_mel_bins"] = int(preprocessor.get("num_mel_bins", 80))
        fields["stack_frames"] = int(preprocessor.get("stride", 2))
        config = cls(**fields)
        if config.stack_frames != 2 or config.num_mel_bins * 2 != config.feature_projection_input_dim:
            raise UnsupportedModelError(
                f"{source}: {config.num_mel_bins} mel bins stacked by {config.stack_frames} do not give "
                f"feature_projection_input_dim {config.feature_projection_input_dim}; supported: stride 2")
        return config
