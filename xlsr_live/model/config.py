"""The part of a Hugging Face `Wav2Vec2Config` that inference needs, validated."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

SUPPORTED_MODEL_TYPES = ("wav2vec2",)
SUPPORTED_NORMS = ("layer", "group")
SUPPORTED_ACTIVATIONS = ("gelu",)


class UnsupportedModelError(ValueError):
    """A checkpoint that xlsr-live cannot run, with what was found and what is supported."""


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Config:
    """Architecture of a wav2vec2 CTC model (field names follow transformers' config.json)."""

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
    do_stable_layer_norm: bool = True  # pre-norm transformer (XLSR) vs post-norm (base)
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0

    @property
    def hop_samples(self) -> int:
        """Samples between two output frames (320 for every released checkpoint)."""
        hop = 1
        for stride in self.conv_stride:
            hop *= stride
        return hop

    @property
    def receptive_field_samples(self) -> int:
        """Samples that one output frame of the conv feature encoder sees (400 usually)."""
        field = 1
        for kernel, stride in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            field = (field - 1) * stride + kernel
        return field

    def num_frames(self, num_samples: int) -> int:
        """Output frames of the conv feature encoder for an input of `num_samples` samples."""
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return max(length, 0)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json") -> "Wav2Vec2Config":
        """Validate a transformers config dict; raise UnsupportedModelError for what we cannot run."""
        _check_supported(raw, source)
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: raw[k] for k in fields if k in raw}
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
        return config


def _check_supported(raw: Mapping[str, Any], source: str) -> None:
    """Refuse architectures and options outside the wav2vec2 CTC inference we implement."""
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"{source}: model_type {model_type!r} is not supported; supported: {SUPPORTED_MODEL_TYPES}"
        )
    architectures = raw.get("architectures") or ["Wav2Vec2ForCTC"]
    if "Wav2Vec2ForCTC" not in architectures:
        raise UnsupportedModelError(
            f"{source}: architectures {architectures} has no Wav2Vec2ForCTC head; "
            "xlsr-live runs CTC fine-tuned checkpoints only"
        )
    norm = raw.get("feat_extract_norm", "group")
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
    if raw.get("adapter_attn_dim") is not None:
        raise UnsupportedModelError(
            f"{source}: adapter_attn_dim={raw['adapter_attn_dim']} (MMS language adapters) is not "
            "supported; supported: plain Wav2Vec2ForCTC checkpoints"
        )
    if raw.get("add_adapter"):
        raise UnsupportedModelError(
            f"{source}: add_adapter=true (output adapter layers) is not supported; "
            "supported: plain Wav2Vec2ForCTC checkpoints"
        )
    if raw.get("use_weighted_layer_sum"):
        raise UnsupportedModelError(f"{source}: use_weighted_layer_sum=true is not supported")
