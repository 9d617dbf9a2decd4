"""Beam search with the demo model's `language_model/` folder, through pyctcdecode (recipe side).

The package's runtime loader for `language_model/` folders lives in xlsr_live (decoding); the recipe
uses pyctcdecode directly so that evaluate.py and tune_lm.py do not depend on it.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np

import common as C

BEAM_WIDTH = 32  # pyctcdecode's default is 100; 32 loses little here and is ~3x faster
TOKEN_MIN_LOGP = -5.0  # pyctcdecode's default, and xlsr_live's DecoderOptions.token_min_logp
# tokens that are never CTC targets in the recipe: kept out of the beams
_NEVER = ("<s>", "</s>", "<unk>")


def labels():
    """pyctcdecode's alphabet for the recipe vocabulary: blank '', word delimiter ' '."""
    out = []
    for t in C.VOCAB:
        out.append("" if t == "<pad>" else " " if t == "|" else t)
    return out


def kenlm_file(lm_dir: str) -> str:
    names = [f for f in os.listdir(lm_dir) if os.path.splitext(f)[1] in (".bin", ".binary", ".arpa")]
    if len(names) != 1:
        raise ValueError(f"expected one .bin/.binary/.arpa file in {lm_dir}, found {names}")
    return os.path.join(lm_dir, names[0])


def load_decoder(lm_dir: str, alpha: float | None = None, beta: float | None = None,
                 unk_score_offset: float | None = None):
    """A pyctcdecode decoder from a `language_model/` folder; alpha/beta/unk_score_offset from
    attrs.json unless given."""
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as e:
        raise ImportError("LM decoding needs pyctcdecode and kenlm: pip install 'xlsr-live[lm]'") from e
    attrs = json.load(open(os.path.join(lm_dir, "attrs.json")))
    unigrams = open(os.path.join(lm_dir, "unigrams.txt")).read().split()
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    return build_ctcdecoder(labels(), kenlm_file(lm_dir), unigrams,
                            alpha=attrs["alpha"] if alpha is None else alpha,
                            beta=attrs["beta"] if beta is None else beta,
                            unk_score_offset=(attrs.get("unk_score_offset", -10.0) if unk_score_offset is None
                                              else unk_score_offset),
                            lm_score_boundary=attrs.get("score_boundary", True))


def log_probs(logits: np.ndarray) -> np.ndarray:
    """Frame log-probabilities (T, V) with the never-emitted special tokens masked out."""
    x = logits.astype(np.float32).copy()
    for t in _NEVER:
        x[:, C.VOCAB_DICT[t]] = -1e4
    x -= x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def decode(decoder, logp: np.ndarray, beam_width: int = BEAM_WIDTH, token_min_logp: float = TOKEN_MIN_LOGP) -> str:
    return " ".join(decoder.decode(logp, beam_width=beam_width, token_min_logp=token_min_logp).split())
