"""One validated config for every CTC family: which blocks, which sizes (transformers' field names)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

SUPPORTED_NORMS = ("layer", "group")
SUPPORTED_ACTIVATIONS = ("gelu",)


class UnsupportedModelError(ValueError):
    """A checkpoint that xlsr-live cannot run, with what was found and what is supported."""


@dataclasses.dataclass(frozen=True)
class Family:
    """What sets one checkpoint family apart: its CTC head, tensor prefix and swappable blocks."""

    model_type: str  # config.json "model_type"
    architecture: str  # the CTC head in config.json "architectures"
    prefix: str  # state-dict prefix of the encoder ("wav2vec2." ...)
    positional: str = "conv"  # "conv": one wide grouped conv; "conv_stack": data2vec's stack of convs
    attention: str = "plain"  # "plain"; "gated_relative": WavLM's gated relative position bias
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # config fields the family fixes


FAMILIES = {family.model_type: family for family in (
    Family("wav2vec2", "Wav2Vec2ForCTC", "wav2vec2"),
)}
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a CTC speech encoder (field names follow transformers' config.json)."""

    model_type: str = "wav2vec2"
    vocab_size: int = 32
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = True
    feat_extract_norm: str = "layer"  # "layer": per-frame LayerNorm; "group": GroupNorm over time
    feat_proj_layer_norm: bool = True  # HuBERT may leave out the LayerNorm before the projection
    do_stable_layer_norm: bool = True  # pre-norm transformer (XLSR) vs post-norm (base)
    num_conv_pos_embeddings: int = 128  # positional conv kernel; data2vec-audio: number of conv layers
    num_conv_pos_embedding_groups: int = 16
    conv_pos_kernel_size: int = 19  # data2vec-audio: kernel of each positional conv layer
    num_buckets: int = 320  # WavLM: relative position buckets
    max_bucket_distance: int = 800  # WavLM: frames at which buckets stop growing
    adapter_attn_dim: int | None = None  # MMS: per-layer language adapter width
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0

    @property
    def family(self) -> Family:
        """The family's blocks and tensor prefix."""
        return FAMILIES[self.model_type]

    @property
    def hop_samples(self) -> int:
        """Samples between two output frames (320 for every released checkpoint)."""
        return math.prod(self.conv_stride)

    @property
    def receptive_field_samples(self) -> int:
        """Samples that one output frame of the conv feature encoder sees (400 usually)."""
        field = 1
        for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            field = (field - 1) * stride + kernel
        return field

    @property
    def positional_left_frames(self) -> int:
        """Frames before a frame that its positional embedding depends on (streaming left context)."""
        if self.family.positional == "conv_stack":
            return self.num_conv_pos_embeddings * (self.conv_pos_kernel_size // 2)
        return self.num_conv_pos_embeddings // 2

    def num_frames(self, num_samples: int) -> int:
        """Output frames of the conv feature encoder for an input of `num_samples` samples."""
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return max(length, 0)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json") -> "ModelConfig":
        """Validate a transformers config dict; raise UnsupportedModelError for what we cannot run."""
        family = _check_supported(raw, source)
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: raw[k] for k in fields if k in raw}
        kwargs.update(family.fixed)
        for key in ("conv_dim", "conv_kernel", "conv_stride"):
            if key in kwargs:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        config = cls(**kwargs)
        if not len(config.conv_dim) == len(config.conv_kernel) == len(config.conv_stride):
            raise UnsupportedModelError(
                f"{source}: conv_dim, conv_kernel and conv_stride have different lengths "
                f"({len(config.conv_dim)}, {len(config.conv_kernel)}, {len(config.conv_stride)})"
            )
        if config.hidden_size % config.num_attention_heads:
            raise UnsupportedModelError(
                f"{source}: hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        if config.adapter_attn_dim is not None and not config.do_stable_layer_norm:
            raise UnsupportedModelError(f"{source}: adapter_attn_dim needs do_stable_layer_norm=true")
        return config


Wav2Vec2Config = ModelConfig  # the name before other families joined


def _check_supported(raw: Mapping[str, Any], source: str) -> Family:
    """Refuse architectures and options outside the CTC inference we implement; the family otherwise."""
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        raise UnsupportedModelError(
            f"{source}: model_type {model_type!r} is not supported; supported: {SUPPORTED_MODEL_TYPES}"
        )
    family = FAMILIES[model_type]
    architectures = raw.get("architectures") or [family.architecture]
    if family.architecture not in architectures:
        raise UnsupportedModelError(
            f"{source}: architectures {architectures} has no {family.architecture} head; "
            "xlsr-live runs CTC fine-tuned checkpoints only"
        )
    norm = family.fixed.get("feat_extract_norm", raw.get("feat_extract_norm", "group"))
    if norm not in SUPPORTED_NORMS:
        raise UnsupportedModelError(
            f"{source}: feat_extract_norm {norm!r} is not supported; supported: {SUPPORTED_NORMS}"
        )
    for key in ("feat_extract_activation", "hidden_act"):
        act = raw.get(key, "gelu")
        if act not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedModelError(
                f"{source}: {key} {act!r} is not supported; supported: {SUPPORTED_ACTIVATIONS}"
            )
    for key, what in (("add_adapter", "output adapter layers"), ("use_weighted_layer_sum", "weighted layer sum"),
                      ("conv_pos_batch_norm", "batch norm before the positional conv")):
        if raw.get(key):
            raise UnsupportedModelError(f"{source}: {key}=true ({what}) is not supported")
    if raw.get("adapter_attn_dim") is not None:
        raise UnsupportedModelError(
            f"{source}: adapter_attn_dim={raw['adapter_attn_dim']} (MMS language adapters) is not "
            "supported; supported: plain Wav2Vec2ForCTC checkpoints"
        )
    return family
