"""Find a Hugging Face checkpoint (local directory or hub id) and read its tensors safely."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Mapping

import torch

log = logging.getLogger(__name__)

DEMO_MODEL = "demo"  # name of the model shipped inside the package
HUB_PATTERNS = ["*.json", "*.txt"]  # configs, vocab, tokenizer files
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing files, bad tensors, mismatched shapes."""


class ModelNotFoundError(FileNotFoundError):
    """The model is neither a local directory nor reachable/cached on the Hugging Face hub."""


def packaged_model_dir(name: str = DEMO_MODEL) -> Path:
    """Directory of a model shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "models" / name


def resolve_checkpoint(name_or_path: str | os.PathLike | None) -> Path:
    """Local directory for a model name, path, or hub id (downloaded through huggingface_hub)."""
    if name_or_path is None or str(name_or_path) == DEMO_MODEL:
        path = packaged_model_dir()
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"the packaged demo model is missing from {path}")
        return path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; pass the checkpoint directory that holds it")
    name = str(name_or_path)
    if not _HUB_ID.match(name):
        raise ModelNotFoundError(f"{name}: no such directory, and not a hub id of the form org/name")
    return _download_from_hub(name)


def _download_from_hub(repo_id: str) -> Path:
    """snapshot_download honouring the hub cache and HF_HUB_OFFLINE; weights in one format only."""
    try:
        import huggingface_hub
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError as exc:
        raise ModelNotFoundError(
            f"{repo_id}: loading a hub id needs huggingface_hub: pip install 'xlsr-live[hub]'"
        ) from exc
    try:
        directory = Path(
            huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_PATTERNS + ["*.safetensors"])
        )
        if not _weight_files(directory, required=False):
            directory = Path(
                huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_PATTERNS + ["*.bin"])
            )
    except LocalEntryNotFoundError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
        reason = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise ModelNotFoundError(
            f"{repo_id}: not in the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) "
            f"and {reason}; download it while online with `huggingface-cli download {repo_id}` "
            "or pass a local checkpoint directory"
        ) from exc
    except huggingface_hub.utils.HfHubHTTPError as exc:
        raise ModelNotFoundError(f"{repo_id}: the hub refused the download: {exc}") from exc
    return directory


def _weight_files(directory: Path, required: bool = True) -> list[Path]:
    """Weight files of a checkpoint, safetensors preferred, sharded or not."""
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (directory / single).is_file():
            return [directory / single]
        if (directory / index).is_file():
            weight_map = json.loads((directory / index).read_text())["weight_map"]
            shards = [directory / name for name in sorted(set(weight_map.values()))]
            missing = [str(s.name) for s in shards if not s.is_file()]
            if missing:
                raise CheckpointError(f"{directory / index}: shard files missing: {missing}")
            return shards
    if required:
        raise CheckpointError(
            f"{directory}: no weights found (expected model.safetensors, pytorch_model.bin, "
            "or a sharded *.index.json)"
        )
    return []


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint on CPU; pickles are read with weights_only=True."""
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(directory):
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                part = load_file(str(path), device="cpu")
            except Exception as exc:  # safetensors raises its own error types
                raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc
        else:
            try:
                part = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # UnpicklingError for anything but plain tensors
                raise CheckpointError(
                    f"{path}: refused by torch.load(weights_only=True); only plain tensors are "
                    f"accepted: {str(exc).splitlines()[0]}"
                ) from exc
            if not isinstance(part, Mapping) or not all(
                isinstance(v, torch.Tensor) for v in part.values()
            ):
                raise CheckpointError(f"{path}: expected a mapping of names to tensors")
        state.update(part)
    return state


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace the positional conv's weight-norm pair (g, v) by the plain weight g * v / |v|."""
    out = dict(state)
    for g_key, v_key in (("weight_g", "weight_v"),
                         ("parametrizations.weight.original0", "parametrizations.weight.original1")):
        for key in [k for k in state if k.endswith(g_key)]:
            prefix = key[: -len(g_key)]
            g, v = out.pop(key), out.pop(prefix + v_key, None)
            if v is None:
                raise CheckpointError(f"{key} has no matching {prefix + v_key}")
            dims = [d for d in range(v.dim()) if g.shape[d] == 1]  # norm over every dim but dim=2
            norm = v.float().pow(2).sum(dim=dims, keepdim=True).sqrt()
            out[prefix + "weight"] = (g.float() * v.float() / norm).to(v.dtype)
    return out
