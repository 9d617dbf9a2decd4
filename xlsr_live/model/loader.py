"""Load a Hugging Face CTC checkpoint (wav2vec2 and the families in config.FAMILIES) into our own modules."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..constants import SAMPLE_RATE
from .adapters import ADAPTER_FILES, AdapterCache, read_adapter
from .checkpoint import CheckpointError, fold_weight_norm, read_state_dict, resolve_checkpoint
from .config import ModelConfig, UnsupportedModelError
from .tokenizer import CTCVocabulary
from .encoder import CTCModel
from .quantize import quantize_int8

log = logging.getLogger(__name__)

INT8 = ("int8", "qint8")  # dynamic int8 quantization of linear layers (CPU), fp32 activations
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
IGNORED_KEYS = ("masked_spec_embed",)  # training-only (SpecAugment mask embedding), after the family prefix
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor's variance floor
FILTER_BANK_EXTRACTOR = "SeamlessM4TFeatureExtractor"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """preprocessor_config.json: what the model expects of its input waveform."""

    do_normalize: bool = True
    return_attention_mask: bool = False

    def normalize(self, audio: np.ndarray) -> np.ndarray:
        """Zero mean, unit variance over the whole array (if the checkpoint asks for it)."""
        audio = np.asarray(audio, dtype=np.float32)
        if not self.do_normalize or audio.size == 0:
            return audio
        return (audio - audio.mean()) / np.sqrt(audio.var() + NORM_EPS)

    @classmethod
    def from_directory(cls, directory: Path) -> "Preprocessing":
        """Read preprocessor_config.json; absent means the transformers defaults."""
        path = directory / "preprocessor_config.json"
        if not path.is_file():
            log.warning("%s: no preprocessor_config.json; assuming do_normalize=True", directory)
            return cls()
        raw = json.loads(path.read_text())
        rate = raw.get("sampling_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise UnsupportedModelError(f"{path}: sampling_rate {rate} is not supported; supported: {SAMPLE_RATE}")
        if raw.get("feature_extractor_type") == FILTER_BANK_EXTRACTOR:  # w2v-BERT: the model makes and
            if raw.get("stride", 2) != 2:  # normalises its filter banks (model/features.py)
                raise UnsupportedModelError(f"{path}: stride {raw['stride']} is not supported; supported: 2")
            return cls(do_normalize=False, return_attention_mask=True)
        return cls(bool(raw.get("do_normalize", True)), bool(raw.get("return_attention_mask", False)))


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference with everything needed to feed it and read its output."""

    model: CTCModel
    config: ModelConfig
    vocab: CTCVocabulary
    preprocessing: Preprocessing
    source: Path
    device: torch.device
    dtype: torch.dtype  # of activations and of the weights not quantized
    quantization: str | None = None  # "int8": dynamic int8 linear layers
    language: str | None = None  # MMS: the language whose adapters and vocabulary are in use
    adapters: AdapterCache | None = dataclasses.field(default=None, repr=False, compare=False)

    def with_language(self, language: str) -> "LoadedModel":
        """This model for another language of an MMS checkpoint (adapters read on first use, then kept);
        it shares the base weights with every other language. ValueError without language adapters."""
        if language == self.language:
            return self
        if self.adapters is None:
            raise ValueError(f"language {language!r}: {self.source} has no language adapters (adapter_attn_dim)")
        return self.adapters.model(self, language)

    @property
    def uses_attention_mask(self) -> bool:
        """Layer-norm (XLSR) checkpoints take masks; group-norm (base) ones want zero padding."""
        return self.preprocessing.return_attention_mask and self.config.feat_extract_norm in ("layer", "filter_bank")

    @property
    def input_dtype(self) -> torch.dtype:
        """dtype of the waveform fed to the model: float32 for filter-bank models (w2v-BERT makes its
        features from it in float64), the model's dtype otherwise."""
        return torch.float32 if self.config.feat_extract_norm == "filter_bank" else self.dtype

    @torch.inference_mode()
    def logits(self, audio: np.ndarray) -> np.ndarray:
        """Logits (T, V) as float32 for one whole input, normalised as the checkpoint asks."""
        if self.config.num_frames(len(audio)) == 0:
            return np.zeros((0, self.config.vocab_size), dtype=np.float32)
        wave = torch.from_numpy(self.preprocessing.normalize(audio))[None].to(self.device, self.input_dtype)
        return self.model(wave)[0].float().cpu().numpy()


def set_threads(threads: int) -> None:
    """torch's CPU intra-op threads for this process; ValueError names a bad count."""
    if threads < 1:
        raise ValueError(f"--threads {threads}: must be at least 1")
    torch.set_num_threads(threads)


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """'fp32' / 'bf16' / 'fp16' / 'int8' (or a torch dtype) -> activation dtype; ValueError names a bad one."""
    if isinstance(name, torch.dtype):
        return name
    if str(name).lower() in INT8:
        return torch.float32
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"dtype {name!r} is not supported; supported: {sorted(DTYPES) + list(INT8)}") from None


def load_model(
    name_or_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    fuse_qkv: bool = False,
    language: str | None = None,
) -> LoadedModel:
    """Load a local checkpoint directory or hub id (default: the packaged demo model).

    fuse_qkv: one (H -> 3H) attention input projection per layer instead of three (exact).
    language: MMS checkpoints (adapter_attn_dim): the language whose adapter.<language>.safetensors
    and vocabulary to use (default: the tokenizer's target_lang); other languages through
    LoadedModel.with_language.
    """
    started = time.perf_counter()
    directory = resolve_checkpoint(name_or_path)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json")
    config = ModelConfig.from_dict(json.loads(config_path.read_text()), source=str(config_path))
    if language is not None and config.adapter_attn_dim is None:
        raise ValueError(f"language {language!r}: {directory} has no language adapters (adapter_attn_dim)")
    vocab = CTCVocabulary.from_directory(directory, language)
    state = read_state_dict(directory)
    language = language or _target_language(directory, config)
    if language is not None and any(p.is_file() for p in _adapter_files(directory, language)):
        state.update(read_adapter(directory, language))  # this language's adapters and CTC head
        config = dataclasses.replace(config, vocab_size=state["lm_head.weight"].shape[0])
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{directory}: vocab.json has {len(vocab)} tokens but the model's output layer "
            f"(config vocab_size) has {config.vocab_size}"
        )
    with torch.device("meta"):  # no random init, no second copy of the weights
        model = CTCModel(config)
    load_state(model, state, str(directory))
    torch_device, activation_dtype = torch.device(device), parse_dtype(dtype)
    _warn_if_emulated(activation_dtype, torch_device)
    model = model.eval().to(torch_device, activation_dtype)
    if fuse_qkv:
        model.fuse_qkv()
    quantization = "int8" if str(dtype).lower() in INT8 else None
    if quantization:
        if torch_device.type != "cpu":
            raise ValueError(f"dtype {dtype!r} (dynamic int8) runs on the CPU only, not on {torch_device}")
        model = quantize_int8(model)
    loaded = LoadedModel(model, config, vocab, Preprocessing.from_directory(directory), directory,
                         torch_device, activation_dtype, quantization, language,
                         AdapterCache(directory) if config.adapter_attn_dim is not None else None)
    if loaded.adapters is not None:
        loaded.adapters.add(loaded)
    log.info("loaded %s (%d layers x %d) in %.2f s", directory, config.num_hidden_layers,
             config.hidden_size, time.perf_counter() - started)
    return loaded


def native_cpu_bf16() -> bool:
    """Whether this CPU runs bf16 matrix products natively (oneDNN's AVX-512 / AMX bf16 kernels)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _warn_if_emulated(dtype: torch.dtype, device: torch.device) -> None:
    """Log a warning for bf16 on a CPU whose oneDNN has no bf16 kernels (no AVX-512 / AMX): emulated
    there, 6.8x slower than float32 and 14x slower than int8 at XLSR-53 size on an AVX2 EPYC (session 13)."""
    if dtype == torch.bfloat16 and device.type == "cpu" and not native_cpu_bf16():
        log.warning("dtype bfloat16 on a CPU without native bf16 (capability %s) is emulated and much "
                    "slower; int8 (the CPU default) or float32 is faster here",
                    torch.backends.cpu.get_cpu_capability())


def _target_language(directory: Path, config: ModelConfig) -> str | None:
    """MMS checkpoints: the tokenizer's target_lang, if it names one."""
    path = directory / "tokenizer_config.json"
    if config.adapter_attn_dim is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("target_lang")


def _adapter_files(directory: Path, language: str) -> list[Path]:
    return [directory / pattern.format(language) for pattern in ADAPTER_FILES]


def load_state(model: CTCModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy every tensor into the model; any missing, unexpected or mis-shaped tensor is fatal."""
    state = fold_weight_norm(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    family = model.config.family
    ignored = {f"{family.prefix}.{key}" for key in IGNORED_KEYS}
    ignored |= {key for key in state if key.startswith(tuple(f"{family.prefix}.{p}" for p in family.ignored))}
    unexpected = sorted(set(state) - set(expected) - ignored)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: tensors do not match a {model.config.family.architecture} of this config.json: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
        )
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(state[key].shape)}, "
                f"config.json implies {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: state[k].float() for k in expected}, strict=True, assign=True)
