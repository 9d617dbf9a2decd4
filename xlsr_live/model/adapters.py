"""MMS language adapters (Pratap et al., 2023): one base model, a small adapter and CTC head per language.

A checkpoint ships `adapter.<lang>.safetensors` (every layer's `adapter_layer` weights and the
`lm_head` for that language's vocabulary) next to a `vocab.json` nested by language. A language's
model shares every module of the base model but those, so sessions in different languages share one
set of base weights; each language is read on first use and kept.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .blocks import AttnAdapter
from .checkpoint import CheckpointError
from .config import ModelConfig
from .quantize import quantize_int8
from .tokenizer import CTCVocabulary

if TYPE_CHECKING:
    from .loader import LoadedModel

ADAPTER_FILES = ("adapter.{}.safetensors", "adapter.{}.bin")  # transformers' names, safetensors first
LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # MMS uses ISO 639-3 codes, some with a script suffix


def check_language(language: str) -> str:
    """A language name that can be part of a file name; ValueError names anything else."""
    if not isinstance(language, str) or not LANGUAGE_NAME.fullmatch(language):
        raise ValueError(f"language {language!r}: expected 1-32 letters, digits, '_' or '-'")
    return language


def adapter_paths(config: ModelConfig) -> list[str]:
    """Module paths an adapter file replaces: every layer's adapter_layer, and lm_head."""
    prefix = config.family.prefix
    return [f"{prefix}.encoder.layers.{i}.adapter_layer" for i in range(config.num_hidden_layers)] + ["lm_head"]


def read_adapter(directory: Path, language: str) -> dict[str, torch.Tensor]:
    """Tensors of adapter.<language>.safetensors (or .bin, read with weights_only=True)."""
    check_language(language)
    for pattern in ADAPTER_FILES:
        path = directory / pattern.format(language)
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # safetensors and torch raise their own error types
            raise CheckpointError(f"{path}: not a readable adapter file: {str(exc).splitlines()[0]}") from exc
    raise CheckpointError(f"{directory}: no {ADAPTER_FILES[0].format(language)} (MMS adapter for {language!r})")


def check_adapter(state: dict[str, torch.Tensor], config: ModelConfig, source: str) -> None:
    """The adapter file holds exactly the adapter layers and lm_head of this config."""
    expected = {f"{path}.{name}" for path in adapter_paths(config)[:-1]
                for name in ("norm.weight", "norm.bias", "linear_1.weight", "linear_1.bias",
                             "linear_2.weight", "linear_2.bias")} | {"lm_head.weight", "lm_head.bias"}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{source}: adapter tensors do not match config.json: missing {missing[:3]} "
                              f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)})")


def swap_modules(module: nn.Module, replacements: dict[str, nn.Module], prefix: str = "") -> nn.Module:
    """A shallow copy of `module` sharing every submodule and parameter except those named in `replacements`."""
    clone = object.__new__(type(module))
    clone.__dict__ = dict(module.__dict__)
    clone._modules = {}
    for name, child in module._modules.items():
        path = prefix + name
        if path in replacements:
            clone._modules[name] = replacements[path]
        elif any(key.startswith(path + ".") for key in replacements):
            clone._modules[name] = swap_modules(child, replacements, path + ".")
        else:
            clone._modules[name] = child
    return clone


def _adapter_modules(base: "LoadedModel", state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, nn.Module]:
    """New adapter layers and lm_head holding `state`, on the base model's device, dtype and quantization."""
    modules: dict[str, nn.Module] = {}
    for path in adapter_paths(config):
        if path == "lm_head":
            module = nn.Linear(config.hidden_size, config.vocab_size)
        else:
            module = AttnAdapter(config)
        module.load_state_dict({k[len(path) + 1:]: v for k, v in state.items() if k.startswith(path + ".")})
        module = module.eval().to(base.device, base.dtype)
        if base.quantization == "int8":
            module = quantize_int8(nn.Sequential(module))[0]
        modules[path] = module
    return modules


class RowAdapters(nn.Module):
    """One batch of streams in several languages: row i goes through its own language's module;
    outputs narrower than the widest (CTC heads of smaller vocabularies) are zero padded."""

    def __init__(self, choices: list[nn.Module], rows: list[int]):
        super().__init__()
        self.choices = nn.ModuleList(choices)
        self.rows = [[i for i, choice in enumerate(rows) if choice == k] for k in range(len(choices))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [module(x[rows]) for module, rows in zip(self.choices, self.rows)]  # (B_k, T, out_k)
        y = x.new_zeros(x.shape[:-1] + (max(out.shape[-1] for out in outs),))
        for out, rows in zip(outs, self.rows):
            y[rows, ..., :out.shape[-1]] = out
        return y


class AdapterCache:
    """Per-language models over one base model, made on first use and kept (safe across threads)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._models: dict[str, "LoadedModel"] = {}
        self._lock = threading.Lock()

    def languages(self) -> list[str]:
        """Languages with an adapter file in the checkpoint."""
        names = {p.name.split(".")[1] for pattern in ADAPTER_FILES for p in self.directory.glob(pattern.format("*"))}
        return sorted(names)

    def add(self, model: "LoadedModel") -> None:
        """Keep a model already made for its language (the base model)."""
        with self._lock:
            self._models.setdefault(model.language, model)

    def model(self, base: "LoadedModel", language: str) -> "LoadedModel":
        """`base` with `language`'s adapters and vocabulary; the same object for every later call."""
        check_language(language)
        with self._lock:
            if language not in self._models:
                self._models[language] = self._make(base, language)
            return self._models[language]

    def mixed(self, base: "LoadedModel", languages: list[str]) -> "LoadedModel":
        """One model for a batch whose row i is in languages[i]: the base layers run once for all
        rows, each row's adapters and CTC head are its language's (logits zero padded to the widest)."""
        names = sorted(set(languages))
        models = [self.model(base, name) for name in names]
        rows = [names.index(language) for language in languages]
        replacements = {path: RowAdapters([m.model.get_submodule(path) for m in models], rows)
                        for path in adapter_paths(base.config)}
        return dataclasses.replace(base, model=swap_modules(base.model, replacements), language=None)

    def _make(self, base: "LoadedModel", language: str) -> "LoadedModel":
        vocab = CTCVocabulary.from_directory(self.directory, language)
        state = read_adapter(self.directory, language)
        config = dataclasses.replace(base.config, vocab_size=len(vocab))
        check_adapter(state, config, f"{self.directory}/adapter.{language}")
        if state["lm_head.weight"].shape[0] != len(vocab):
            raise CheckpointError(f"{self.directory}: adapter {language!r} has {state['lm_head.weight'].shape[0]} "
                                  f"outputs, its vocabulary {len(vocab)} tokens")
        model = swap_modules(base.model, _adapter_modules(base, state, config))
        model.config = config
        return dataclasses.replace(base, model=model, config=config, vocab=vocab, language=language)
