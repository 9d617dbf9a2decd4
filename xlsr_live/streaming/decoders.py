"""Per-utterance decoders behind one interface: chunks of logits in, stable/unstable text out."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..constants import SAMPLES_PER_FRAME
from ..model.tokenizer import CTCVocabulary
from .decoding import GreedyCTCDecoder, normalize_text, runs_text, runs_to_words
from .events import Word
from .options import DecoderOptions


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """Text after one chunk: `stable` never changes later; `unstable` is the rest (may start with a space)."""

    stable: str
    unstable: str


def split_stable(stable_raw: str, full_raw: str) -> Hypothesis:
    """Normalise committed and whole raw texts; the stable part is a prefix of the whole."""
    stable = normalize_text(stable_raw)
    full = normalize_text(full_raw)
    if not full.startswith(stable):  # cannot happen when full_raw extends stable_raw
        raise AssertionError(f"stable {stable!r} is not a prefix of {full!r}")
    return Hypothesis(stable, full[len(stable):])


def trailing_silent_frames(ids: np.ndarray, vocab: CTCVocabulary) -> int:
    """Number of frames at the end of `ids` whose best token produces no text (blank/specials)."""
    count = 0
    for token_id in ids[::-1].tolist():
        if not vocab.is_silent(token_id):
            break
        count += 1
    return count


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
        if len(committed):
            ids = committed.argmax(axis=-1)
            silent = trailing_silent_frames(ids, self.vocab)
            self.trailing_blank_frames = silent if silent < len(ids) else self.trailing_blank_frames + silent
        tail = self.decoder.peek(lookahead)
        return split_stable(self._stable_raw, self._stable_raw + runs_text(tail, self.vocab))

    @property
    def has_text(self) -> bool:
        """True once any non-delimiter character has been committed."""
        return bool(self._stable_raw.strip())

    def finish(self, start_sample: int) -> tuple[str, list[Word]]:
        """Final text and words; `start_sample` (16 kHz stream samples) places frame 0 in time."""
        text = normalize_text(self._stable_raw)
        words = runs_to_words(self.decoder.runs, self.vocab, frame_offset=start_sample / SAMPLES_PER_FRAME)
        return text, words


class DecoderFactory:
    """Makes one decoder per utterance; the pyctcdecode decoder (and KenLM) is built once and shared."""

    def __init__(self, vocab: CTCVocabulary, options: DecoderOptions):
        self.vocab = vocab
        self.options = options
        self._beam_search = None

    def __call__(self):
        if self.options.kind == "beam":
            from .beam import BeamAlphabet, BeamUtteranceDecoder, build_beam_decoder

            if self._beam_search is None:
                self._beam_search = build_beam_decoder(BeamAlphabet(self.vocab), self.options)
            return BeamUtteranceDecoder(self.vocab, self.options, self._beam_search)
        return GreedyUtteranceDecoder(self.vocab)
