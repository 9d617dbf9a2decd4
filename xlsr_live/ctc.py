"""Greedy CTC primitives, incremental: frames in, token runs out, words with times and confidence.

Used by the offline reference (offline.py) and by the streaming decoders (decoding/) alike.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from .constants import FRAMES_PER_SECOND

if TYPE_CHECKING:  # the vocabulary's package (model/) imports torch
    from .model.tokenizer import CTCVocabulary


@dataclasses.dataclass(frozen=True)
class Word:
    """One recognised word with its audio span (seconds) and a confidence in [0, 1]."""

    word: str
    start: float
    end: float
    conf: float


@dataclasses.dataclass
class TokenRun:
    """One emitted CTC token: frames [start_frame, end_frame) of the stream, best posterior."""

    token_id: int
    start_frame: int
    end_frame: int
    prob: float


def frame_posteriors(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best id and its softmax probability for each frame of logits (T, V)."""
    logits = np.asarray(logits, dtype=np.float32)
    ids = logits.argmax(axis=-1)
    best = np.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
    probs = 1.0 / np.exp(logits - best[:, None]).sum(axis=-1)
    return ids, probs


class GreedyCTCDecoder:
    """Incremental greedy CTC decoding: `advance` commits frames; `peek` decodes without committing.

    The cost of a step depends on the frames given, not on how long the utterance is.
    """

    def __init__(self, vocab: CTCVocabulary, first_frame: int = 0):
        self.vocab = vocab
        self.runs: list[TokenRun] = []
        self.next_frame = first_frame
        self._last_id = vocab.blank_id  # id of the previous frame (repeats collapse across calls)

    def advance(self, logits: np.ndarray) -> list[TokenRun]:
        """Commit frames (T, V) following the last committed one; returns the new runs."""
        new, self._last_id = self._collapse(logits, self.runs, self._last_id, self.next_frame)
        self.runs.extend(new)
        self.next_frame += len(logits)
        return new

    def peek(self, logits: np.ndarray) -> list[TokenRun]:
        """Runs the uncommitted frames (T, V) would add after the committed ones (state unchanged)."""
        tail = [dataclasses.replace(self.runs[-1])] if self.runs else []
        new, _ = self._collapse(logits, tail, self._last_id, self.next_frame)
        return new

    def _collapse(self, logits, previous, last_id, first_frame):
        """CTC collapse of frames: merge repeats (also with `previous[-1]`), drop blanks."""
        new: list[TokenRun] = []
        if len(logits) == 0:
            return new, last_id
        ids, probs = frame_posteriors(logits)
        for offset, (token_id, prob) in enumerate(zip(ids.tolist(), probs.tolist())):
            frame = first_frame + offset
            if token_id == last_id:
                run = new[-1] if new else (previous[-1] if previous and token_id != self.vocab.blank_id else None)
                if run is not None and run.end_frame == frame and not self.vocab.is_silent(token_id):
                    run.end_frame = frame + 1
                    run.prob = max(run.prob, prob)
            elif not self.vocab.is_silent(token_id):
                new.append(TokenRun(token_id, frame, frame + 1, prob))
            last_id = token_id
        return new, last_id


def runs_text(runs: list[TokenRun], vocab: CTCVocabulary) -> str:
    """Raw text of runs (delimiters as spaces, not normalised)."""
    return "".join(vocab.token_text(r.token_id) for r in runs)


def normalize_text(text: str) -> str:
    """Collapse whitespace and strip."""
    return " ".join(text.split())


def runs_to_words(
    runs: list[TokenRun], vocab: CTCVocabulary, frame_offset: int = 0,
    frames_per_second: int = FRAMES_PER_SECOND,
) -> list[Word]:
    """Group runs into words at delimiters; times in seconds, conf = mean of character posteriors.

    Without a delimiter in the vocabulary (character languages) every token is a word.
    """
    words: list[Word] = []
    current: list[TokenRun] = []
    each_token = not vocab.has_word_boundaries

    def close() -> None:
        if current:
            text = "".join(vocab.token_text(r.token_id) for r in current)
            start = (current[0].start_frame + frame_offset) / frames_per_second
            end = (current[-1].end_frame + frame_offset) / frames_per_second
            conf = float(np.mean([r.prob for r in current]))
            words.append(Word(text, start, end, min(max(conf, 0.0), 1.0)))
            current.clear()

    for run in runs:
        if vocab.token_text(run.token_id).isspace():
            close()
        else:
            current.append(run)
            if each_token:
                close()
    close()
    return words


def greedy_decode(logits: np.ndarray, vocab: CTCVocabulary, frame_offset: int = 0) -> tuple[str, list[Word]]:
    """Whole-input greedy decode: normalised text and words with times."""
    decoder = GreedyCTCDecoder(vocab)
    decoder.advance(logits)
    return normalize_text(runs_text(decoder.runs, vocab)), runs_to_words(decoder.runs, vocab, frame_offset)


def trailing_silence(previous: int, committed: np.ndarray, vocab: CTCVocabulary) -> int:
    """Silent frames (best token blank or special) at the end of everything committed so far.

    `previous` is the count before the frames `committed` (T, V) were appended to the utterance.
    """
    ids = np.asarray(committed).argmax(axis=-1) if len(committed) else np.zeros(0, dtype=np.int64)
    count = 0
    for token_id in ids[::-1].tolist():
        if not vocab.is_silent(token_id):
            return count
        count += 1
    return previous + count
