"""Greedy CTC for one utterance behind the UtteranceDecoder interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from ..ctc import GreedyCTCDecoder, Word, normalize_text, runs_text, runs_to_words, trailing_silence
from .base import Hypothesis

if TYPE_CHECKING:  # the vocabulary's package (model/) imports torch
    from ..model.tokenizer import CTCVocabulary


def split_stable(stable_raw: str, full_raw: str) -> Hypothesis:
    """Normalise committed and whole raw texts; the stable part is a prefix of the whole."""
    stable = normalize_text(stable_raw)
    full = normalize_text(full_raw)
    if not full.startswith(stable):  # cannot happen when full_raw extends stable_raw
        raise AssertionError(f"stable {stable!r} is not a prefix of {full!r}")
    return Hypothesis(stable, full[len(stable):])


class GreedyUtteranceDecoder:
    """Greedy CTC for one utterance: committed chunks are final, the lookahead is peeked."""

    def __init__(self, vocab: CTCVocabulary):
        self.vocab = vocab
        self.decoder = GreedyCTCDecoder(vocab)
        self.trailing_blank_frames = 0  # silent frames at the end of the committed frames
        self._stable_raw = ""  # committed text, grown per chunk (no re-walk of old runs)

    def advance(self, committed: np.ndarray, lookahead: np.ndarray) -> Hypothesis:
        """Commit frames `committed` (T, V); peek at `lookahead` (T', V) for the unstable tail."""
        self._stable_raw += runs_text(self.decoder.advance(committed), self.vocab)
        self.trailing_blank_frames = trailing_silence(self.trailing_blank_frames, committed, self.vocab)
        tail = self.decoder.peek(lookahead)
        return split_stable(self._stable_raw, self._stable_raw + runs_text(tail, self.vocab))

    @property
    def has_text(self) -> bool:
        """True once any non-delimiter character has been committed."""
        return bool(self._stable_raw.strip())

    def finish(self, start_sample: int, hop_samples: int = SAMPLES_PER_FRAME) -> tuple[str, list[Word]]:
        """Final text and words; `start_sample` (16 kHz stream samples) places frame 0 in time,
        `hop_samples` is the model's frame."""
        text = normalize_text(self._stable_raw)
        words = runs_to_words(self.decoder.runs, self.vocab, frame_offset=start_sample / hop_samples,
                              frames_per_second=SAMPLE_RATE / hop_samples)
        return text, words
