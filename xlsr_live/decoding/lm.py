"""Language models the way checkpoints ship them: a `language_model/` folder in pyctcdecode's layout.

`Wav2Vec2ProcessorWithLM.save_pretrained` (pyctcdecode's `LanguageModel.save_to_dir`) writes
`language_model/attrs.json` (alpha, beta, unk_score_offset, score_boundary), one KenLM model
(`.arpa`, `.bin` or `.binary`) and `unigrams.txt` next to the checkpoint's other files. Decoder
kind "auto" uses such a folder with beam search, or greedy decoding when there is none.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional

from .extras import MissingExtraError, import_pyctcdecode, require_kenlm
from .options import DEFAULT_ALPHA, DEFAULT_BETA, DecoderOptions

log = logging.getLogger(__name__)

LM_DIRECTORY = "language_model"
LM_SUFFIXES = (".arpa", ".bin", ".binary")
ATTRS = ("alpha", "beta", "unk_score_offset", "score_boundary")


class LanguageModelError(ValueError):
    """A language model folder or file that cannot be used (names the path and what is wrong)."""


@dataclasses.dataclass(frozen=True)
class LanguageModelFiles:
    """What a `language_model/` folder (or a bare KenLM file) holds."""

    model_path: Path
    unigrams: Optional[tuple[str, ...]]  # None: read from an ARPA file, unknown for binary ones
    attrs: dict


def find_language_model(checkpoint: Optional[Path]) -> Optional[Path]:
    """The checkpoint's `language_model/` folder, if it has one with a KenLM file."""
    if checkpoint is None:
        return None
    folder = Path(checkpoint) / LM_DIRECTORY
    if folder.is_dir() and any(p.suffix in LM_SUFFIXES for p in folder.iterdir()):
        return folder
    return None


def read_language_model(path: str | Path) -> LanguageModelFiles:
    """The files of a `language_model/` folder or a KenLM file; LanguageModelError names a problem."""
    path = Path(path)
    if path.is_file():
        return LanguageModelFiles(path, _read_unigrams(path.parent / "unigrams.txt"), {})
    if not path.is_dir():
        raise LanguageModelError(f"{path}: no such KenLM file or language_model folder")
    models = sorted(p for p in path.iterdir() if p.suffix in LM_SUFFIXES)
    if len(models) != 1:
        raise LanguageModelError(f"{path}: expected one KenLM model ({', '.join(LM_SUFFIXES)}), "
                                 f"found {[p.name for p in models]}")
    attrs_path = path / "attrs.json"
    attrs = json.loads(attrs_path.read_text(encoding="utf-8")) if attrs_path.is_file() else {}
    unknown = sorted(set(attrs) - set(ATTRS))
    if not isinstance(attrs, dict) or unknown:
        raise LanguageModelError(f"{attrs_path}: expected a JSON object with keys from {ATTRS}, found {unknown}")
    return LanguageModelFiles(models[0], _read_unigrams(path / "unigrams.txt"), attrs)


def _read_unigrams(path: Path) -> Optional[tuple[str, ...]]:
    """unigrams.txt (one word a line), or None if absent."""
    if not path.is_file():
        return None
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def resolve_decoder(options: DecoderOptions, checkpoint: Optional[Path]) -> DecoderOptions:
    """Kind "auto" -> beam search with the checkpoint's `language_model/` folder, or greedy without
    one (or without the packages beam search needs: logged, naming the install line)."""
    if options.kind != "auto":
        return options
    folder = options.kenlm_path or find_language_model(checkpoint)
    if folder is None:
        return dataclasses.replace(options, kind="greedy")
    try:
        import_pyctcdecode()
        require_kenlm()
    except MissingExtraError as exc:
        log.warning("%s has a language model, decoding greedily without it: %s", folder, exc)
        return dataclasses.replace(options, kind="greedy", kenlm_path=None)
    return dataclasses.replace(options, kind="beam", kenlm_path=str(folder))


def build_language_model(files: LanguageModelFiles, options: DecoderOptions):
    """pyctcdecode LanguageModel over the KenLM file; alpha/beta: options, else attrs.json, else 0.5/1.0."""
    import kenlm
    from pyctcdecode.language_model import LanguageModel, load_unigram_set_from_arpa

    unigrams = files.unigrams
    if unigrams is None and files.model_path.suffix == ".arpa":
        unigrams = tuple(load_unigram_set_from_arpa(str(files.model_path)))
    elif unigrams is None:
        log.warning("%s: no unigrams.txt beside the binary model; decoding accuracy may suffer", files.model_path)
    attrs = {"alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA, **files.attrs}
    for name in ("alpha", "beta"):
        if getattr(options, name) is not None:
            attrs[name] = getattr(options, name)
    try:
        model = kenlm.Model(str(files.model_path))
    except (OSError, RuntimeError) as exc:
        raise LanguageModelError(f"{files.model_path}: KenLM cannot load it: {exc}") from exc
    return LanguageModel(model, unigrams, **attrs)
