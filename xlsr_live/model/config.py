"""One validated config for every CTC family: which blocks, which sizes (transformers' field names)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from .features import FilterBankGeometry

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
    layer: str = "transformer"  # "conformer": conformer.py's layers (positions by position_embeddings_type)
    front_end: str = "conv"  # "filter_bank": w2v-BERT's stacked log-mel filter banks (features.py)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # transformers' defaults that differ
    ignored: tuple[str, ...] = ()  # tensor-name prefixes (after `prefix`) the runtime does not use


FAMILIES = {family.model_type: family for family in (
    Family("wav2vec2", "Wav2Vec2ForCTC", "wav2vec2"),
    Family("hubert", "HubertForCTC", "hubert"),
    Family("data2vec-audio", "Data2VecAudioForCTC", "data2vec_audio", positional="conv_stack",
           fixed={"feat_extract_norm": "layer", "do_stable_layer_norm": False}),
    Family("wavlm", "WavLMForCTC", "wavlm", attention="gated_relative"),
    # transformers builds a positional conv for Wav2Vec2-Conformer but never applies it
    Family("wav2vec2-conformer", "Wav2Vec2ConformerForCTC", "wav2vec2_conformer", positional="none",
           layer="conformer", ignored=("encoder.pos_conv_embed.",),
           defaults={"conv_bias": False, "feat_extract_norm": "group", "do_stable_layer_norm": False}),
    Family("wav2vec2-bert", "Wav2Vec2BertForCTC", "wav2vec2_bert", positional="none", layer="conformer",
           front_end="filter_bank", fixed={"feat_extract_norm": "filter_bank"},
           defaults={"hidden_act": "swish", "position_embeddings_type": "relative_key"}),
)}
CONFORMER_ACTIVATIONS = ("gelu", "swish", "silu", "relu")  # conformer.ACTIVATIONS
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)
ADAPTER_MODEL_TYPES = ("wav2vec2", "hubert")  # transformers puts MMS adapters in their pre-norm layers


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
    feat_extract_norm: str = "layer"  # "layer": per-frame LayerNorm; "group": GroupNorm over time;
    # "filter_bank" (w2v-BERT): no conv front end, features made (and normalised) per input
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
    # conformer families (Wav2Vec2-Conformer, Wav2Vec2-BERT)
    hidden_act: str = "gelu"  # feed-forward and convolution-module activation
    position_embeddings_type: str | None = "relative"  # "relative", "rotary", "relative_key" (BERT), None
    rotary_embedding_base: float = 10000.0
    left_max_position_embeddings: int = 64  # relative_key: clipped distances to the left
    right_max_position_embeddings: int = 8  # ... and to the right
    conv_depthwise_kernel_size: int = 31
    feature_projection_input_dim: int = 160  # w2v-BERT: 80 mel bins x 2 stacked frames
    use_intermediate_ffn_before_adapter: bool = False
    add_adapter: bool = False  # w2v-BERT: adapter layers (strided convs) after the encoder
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 1
    adapter_act: str = "relu"
    output_hidden_size: int = 1024  # adapter width (the CTC head's input with adapter layers)

    @property
    def family(self) -> Family:
        """The family's blocks and tensor prefix."""
        return FAMILIES[self.model_type]

    @property
    def filter_bank(self) -> bool:
        """True for w2v-BERT's filter-bank front end (frame geometry in features.FilterBankGeometry)."""
        return self.family.front_end == "filter_bank"

    @property
    def feature_dim(self) -> int:
        """Width of the features entering the projection."""
        return self.feature_projection_input_dim if self.filter_bank else self.conv_dim[-1]

    @property
    def head_input_size(self) -> int:
        """Width of the CTC head's input (adapter layers may change it)."""
        return self.output_hidden_size if self.add_adapter else self.hidden_size

    @property
    def filter_bank_geometry(self) -> FilterBankGeometry:
        """w2v-BERT's frame geometry (stacking and adapter strides)."""
        return FilterBankGeometry(self.adapter_kernel_size, self.adapter_stride,
                                  self.num_adapter_layers if self.add_adapter else 0)

    @property
    def hop_samples(self) -> int:
        """Samples between two output frames (320 for every released checkpoint but w2v-BERT adapters)."""
        return self.filter_bank_geometry.hop_samples if self.filter_bank else math.prod(self.conv_stride)

    @property
    def receptive_field_samples(self) -> int:
        """Samples that one output frame of the conv feature encoder sees (400 usually)."""
        if self.filter_bank:
            return self.filter_bank_geometry.receptive_field_samples
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
        if self.filter_bank:
            return self.filter_bank_geometry.num_frames(num_samples)
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return max(length, 0)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "config.json") -> "ModelConfig":
        """Validate a transformers config dict; raise UnsupportedModelError for what we cannot run."""
        family = _check_supported(raw, source)
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = dict(family.defaults)
        kwargs.update({k: raw[k] for k in fields if k in raw})
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
        if config.adapter_attn_dim is not None and (
                not config.do_stable_layer_norm or config.model_type not in ADAPTER_MODEL_TYPES):
            raise UnsupportedModelError(
                f"{source}: adapter_attn_dim (MMS language adapters) with model_type {config.model_type!r} and "
                f"do_stable_layer_norm={config.do_stable_layer_norm}; supported: {ADAPTER_MODEL_TYPES}, pre-norm")
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
    if norm not in SUPPORTED_NORMS and family.front_end == "conv":
        raise UnsupportedModelError(
            f"{source}: feat_extract_norm {norm!r} is not supported; supported: {SUPPORTED_NORMS}"
        )
    if family.layer == "conformer":
        _check_conformer(raw, source, family)
    for key in ("feat_extract_activation",) if family.layer == "conformer" else ("feat_extract_activation", "hidden_act"):
        act = raw.get(key, "gelu")
        if act not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedModelError(
                f"{source}: {key} {act!r} is not supported; supported: {SUPPORTED_ACTIVATIONS}"
            )
    adapters = (("add_adapter", "output adapter layers"),) if family.front_end == "conv" else ()
    for key, what in adapters + (("use_weighted_layer_sum", "weighted layer sum"),
                      ("conv_pos_batch_norm", "batch norm before the positional conv")):
        if raw.get(key):
            raise UnsupportedModelError(f"{source}: {key}=true ({what}) is not supported")
    return family


def _check_conformer(raw: Mapping[str, Any], source: str, family: Family) -> None:
    """Refuse conformer-family options the runtime does not implement (defaults: the family's)."""
    def get(key, default):
        return raw.get(key, family.defaults.get(key, default))

    positions = ("relative", "rotary", "relative_key", None) if family.front_end == "filter_bank" else (
        "relative", "rotary", None)
    if get("position_embeddings_type", "relative") not in positions:
        raise UnsupportedModelError(f"{source}: position_embeddings_type {raw['position_embeddings_type']!r} "
                                    f"is not supported; supported: {positions}")
    for key in ("hidden_act", "adapter_act"):
        if get(key, "gelu" if key == "hidden_act" else "relu") not in CONFORMER_ACTIVATIONS:
            raise UnsupportedModelError(f"{source}: {key} {raw[key]!r} is not supported; "
                                        f"supported: {CONFORMER_ACTIVATIONS}")
    if get("conv_depthwise_kernel_size", 31) % 2 == 0:
        raise UnsupportedModelError(f"{source}: conv_depthwise_kernel_size {raw['conv_depthwise_kernel_size']} "
                                    "must be odd ('same' padding)")
    if get("add_adapter", False) and get("output_hidden_size", 1024) % get("num_attention_heads", 16):
        raise UnsupportedModelError(f"{source}: output_hidden_size {raw.get('output_hidden_size')} is not a "
                                    f"multiple of num_attention_heads {raw.get('num_attention_heads')}")
