"""Streaming CTC beam search on pyctcdecode 0.5.0 (optional KenLM, hotwords), bounded per chunk.

pyctcdecode has no partial-decoding API, so each chunk re-decodes the frames since the last
stable word ("pending" frames) plus the lookahead, from the LM state before that word, whose
letters are replayed first so that the beams continue its CTC path. Words that every voting beam
agrees on (the beams whose combined score is within `stable_vote_margin` of the best, or all
returned beams) and that are finished in every voting beam (followed by another word, or by
`word_end_gap_frames` decoded frames without one) become stable; they may end inside the committed
frames or the first `stable_lookahead_frames` of the lookahead. The pending frames then
restart after them. If the beams never agree, at most `max_beam_frames` frames stay pending: the
best beam's complete words in the older part are committed, so the cost per chunk stays bounded
on long utterances.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from ..ctc import Word, trailing_silence
from .base import Hypothesis
from .extras import import_pyctcdecode, require_kenlm
from .lm import build_language_model, read_language_model
from .options import DecoderOptions

if TYPE_CHECKING:  # the vocabulary's package (model/) imports torch
    from ..model.tokenizer import CTCVocabulary

log = logging.getLogger(__name__)

REPLAY_FLOOR_LOGP = -1000.0  # log-prob of the other labels in a replayed frame (pyctcdecode skips them)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 for numeric headroom."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class BeamAlphabet:
    """pyctcdecode wants unique labels: every silent id (blank, special tokens) is merged into one blank."""

    def __init__(self, vocab: CTCVocabulary):
        labels = vocab.decoder_labels()
        self.silent = [i for i in range(len(vocab)) if vocab.is_silent(i)]
        self.spoken = [i for i in range(len(vocab)) if not vocab.is_silent(i)]
        self.labels = [""] + [labels[i] for i in self.spoken]

    def reduce(self, logprobs: np.ndarray) -> np.ndarray:
        """(T, V) log-probabilities -> (T, 1 + spoken) with the silent ids' mass as blank."""
        silent = logprobs[:, self.silent]
        peak = silent.max(axis=-1, keepdims=True)
        blank = peak + np.log(np.exp(silent - peak).sum(axis=-1, keepdims=True))
        return np.concatenate([blank, logprobs[:, self.spoken]], axis=-1)


def build_beam_decoder(alphabet: BeamAlphabet, options: DecoderOptions):
    """pyctcdecode decoder, with the KenLM model or `language_model/` folder of `options.kenlm_path`
    if one is given; MissingExtraError names a missing extra, LanguageModelError a bad model."""
    pyctcdecode = import_pyctcdecode()
    if options.kenlm_path is None:
        return pyctcdecode.build_ctcdecoder(alphabet.labels)
    require_kenlm()
    from pyctcdecode.alphabet import Alphabet
    from pyctcdecode.decoder import BeamSearchDecoderCTC

    return BeamSearchDecoderCTC(Alphabet.build_alphabet(alphabet.labels),
                                build_language_model(read_language_model(options.kenlm_path), options))


class BeamUtteranceDecoder:
    """Beam search for one utterance (an UtteranceDecoder)."""

    def __init__(self, vocab: CTCVocabulary, options: DecoderOptions, decoder=None,
                 alphabet: Optional[BeamAlphabet] = None):
        """`decoder`: a (shared) pyctcdecode decoder for `alphabet`'s labels, built here if None."""
        self.vocab = vocab
        self.options = options
        self.alphabet = alphabet if alphabet is not None else BeamAlphabet(vocab)
        self.decoder = decoder if decoder is not None else build_beam_decoder(self.alphabet, options)
        self.words: list[tuple[str, int, int, float]] = []  # committed (word, start, end frame, conf)
        self.base = 0  # utterance frame where the pending frames start
        self._pending: list[np.ndarray] = []  # reduced log-probs of committed, undecided frames
        self._covered = 0  # frames of the next committed chunk that stable words already cover
        self._lm_state = None  # KenLM state after the stable words
        self._lm_state_before_last = None  # ... and before the last of them (replayed by _decode)
        self._replay: Optional[np.ndarray] = None  # the last stable word as certain frames (replay_frames)
        self.trailing_blank_frames = 0
        self._best_text = ""

    def _decode(self, frames: np.ndarray):
        """Beams over `frames` (reduced log-probs) after the stable words.

        The last stable word is replayed first (its labels as certain frames, from the LM state
        before it), so the beams continue its CTC path as one decode of the whole utterance would:
        a repeat of its last letter is absorbed and the next word needs a delimiter. A fresh start
        would read that letter as a new one-letter word. Beams that extend the replayed word are
        dropped; if none is left, the frames are decoded from the LM state after it.
        """
        if not len(frames):
            return []
        replay = self._replay
        if replay is not None:
            beams = run_beams(self.decoder, np.concatenate([replay, frames]), self.options,
                              self._lm_state_before_last)
            kept = strip_replayed(beams, self.words[-1][0], len(replay))
            if kept:
                return kept
            log.debug("no beam continues the stable word %r; decoding without it", self.words[-1][0])
        return run_beams(self.decoder, frames, self.options, self._start_state())

    def _start_state(self):
        """KenLM state after the committed words (None without a language model)."""
        model = getattr(self.decoder, "_language_model", None)
        if model is None:
            return None
        if self._lm_state is None:
            self._lm_state = model.get_start_state()
        return self._lm_state

    def _advance_lm(self, words: list[str]) -> None:
        """Move the LM state over newly committed words."""
        model = getattr(self.decoder, "_language_model", None)
        if model is None:
            return
        state = self._start_state()
        for word in words:
            self._lm_state_before_last = state
            _, state = model.score(state, word, is_last_word=False)
        self._lm_state = state

    def advance(self, committed: np.ndarray, lookahead: np.ndarray) -> Hypothesis:
        """Commit frames `committed`; words the voting beams agree on become stable."""
        self.trailing_blank_frames = trailing_silence(self.trailing_blank_frames, committed, self.vocab)
        skipped = min(self._covered, len(committed))  # decided from the previous chunk's lookahead
        committed, self._covered = committed[skipped:], self._covered - skipped
        lookahead = lookahead[self._covered:]
        if len(committed):
            self._pending.append(self.alphabet.reduce(log_softmax(committed)))
        pending = np.concatenate(self._pending) if self._pending else np.zeros((0, len(self.alphabet.labels)))
        if len(self._pending) > 1:
            self._pending = [pending]
        frames = np.concatenate([pending, self.alphabet.reduce(log_softmax(lookahead))]) if len(lookahead) else pending
        beams = self._decode(frames)
        return self._hypothesis(beams, self._commit_agreed(beams, pending, frames))

    def _commit_agreed(self, beams, pending: np.ndarray, frames: np.ndarray) -> int:
        """Commit the finished words the voting beams agree on inside the pending frames (or the
        first `stable_lookahead_frames` of the lookahead); returns how many."""
        if not beams:
            return 0
        voters = voting_beams(beams, self.options.stable_vote_margin)
        ahead = self.options.stable_lookahead_frames
        limit = len(frames) if ahead is None else len(pending) + min(ahead, len(frames) - len(pending))
        count = len(agreed_words(voters, limit, len(frames), self.options.word_end_gap_frames))
        if not count and len(pending) > self.options.max_beam_frames:
            horizon = len(pending) - self.options.max_beam_frames // 2
            voters = beams[:1]
            count = sum(1 for _, (_, end) in beams[0][2][:-1] if end <= horizon)
            log.debug("beams disagree over %d frames: committing %d words of the best", len(pending), count)
        count, cut = safe_cut(voters, count)
        if not count:
            return 0
        for word, (start, end) in beams[0][2][:count]:
            self.words.append((word, self.base + start, self.base + end, word_confidence(frames, start, end)))
        self._advance_lm([word for word, _ in beams[0][2][:count]])
        self._replay = replay_frames(self.words[-1][0], self.alphabet.labels)  # once per commit, not per chunk
        self._pending = [pending[cut:]]
        self._covered = max(0, cut - len(pending))
        self.base += cut
        return count

    def _hypothesis(self, beams, dropped: int) -> Hypothesis:
        """Stable = committed words; unstable = the best beam's words after them."""
        stable = " ".join(w[0] for w in self.words)
        best_words = [w[0] for w in beams[0][2][dropped:]] if beams else []
        self._best_text = " ".join(best_words)
        unstable = (" " if stable and best_words else "") + self._best_text
        return Hypothesis(stable, unstable)

    @property
    def has_text(self) -> bool:
        """True once any word is committed or hypothesised."""
        return bool(self.words) or bool(self._best_text)

    def finish(self, start_sample: int, hop_samples: int = SAMPLES_PER_FRAME) -> tuple[str, list[Word]]:
        """Decode the pending frames; all words with absolute times (start_sample places frame 0,
        hop_samples is the model's frame)."""
        pending = np.concatenate(self._pending) if self._pending else np.zeros((0, len(self.alphabet.labels)))
        beams = self._decode(pending)
        words = list(self.words)
        if beams:
            for word, (start, end) in beams[0][2]:
                words.append((word, self.base + start, self.base + end, word_confidence(pending, start, end)))
        offset, per_second = start_sample / hop_samples, SAMPLE_RATE / hop_samples
        out = [Word(w, (s + offset) / per_second, (e + offset) / per_second, c)
               for w, s, e, c in words]
        return " ".join(w.word for w in out), out


def run_beams(decoder, frames: np.ndarray, options: DecoderOptions, lm_start_state=None,
              offline: bool = False) -> list:
    """pyctcdecode's beams over `frames` (T, labels) of reduced log-probs, with `options`' width (the
    whole-input default when `offline`) and hotwords; `lm_start_state` None starts a sentence. No
    frames: no beams."""
    if len(frames) == 0:
        return []
    return decoder.decode_beams(
        frames.astype(np.float32), beam_width=options.width(offline), token_min_logp=options.token_min_logp,
        hotwords=list(options.hotwords) or None, hotword_weight=options.hotword_weight, lm_start_state=lm_start_state)


def decode_whole(decoder, logprobs: np.ndarray, options: DecoderOptions,
                 hop_samples: int = SAMPLES_PER_FRAME) -> tuple[str, list[Word]]:
    """One beam search over a whole input's reduced log-probs, as transformers' chunked pipeline
    decodes its stitched logits once: the best beam's text and words (frame 0 at 0 s, frames of
    `hop_samples` samples; confidence from `logprobs`)."""
    beams = run_beams(decoder, logprobs, options, offline=True)
    if not beams:
        return "", []
    per_second = SAMPLE_RATE / hop_samples
    words = [Word(word, start / per_second, end / per_second, word_confidence(logprobs, start, end))
             for word, (start, end) in beams[0][2]]
    return " ".join(w.word for w in words), words


def voting_beams(beams, margin: Optional[float]) -> list:
    """The beams whose combined score (pyctcdecode's last tuple field) is within `margin` of the
    best; all of them if margin is None. The best beam (beams[0]) always votes."""
    if margin is None:
        return beams
    floor = beams[0][4] - margin
    return [beams[0]] + [beam for beam in beams[1:] if beam[4] >= floor]


def agreed_words(beams, stable_frames: int, decoded_frames: int = 0, end_gap: Optional[int] = None) -> list:
    """Longest common word prefix of all beams ending within `stable_frames`; each beam's last word is
    left out unless `end_gap` is set and at least that many decoded frames follow it (that beam
    heard no further word: the word is finished)."""
    lists = [finished_words(beam[2], decoded_frames, end_gap) for beam in beams]
    agreed = []
    for position, (word, span) in enumerate(lists[0]):
        if any(len(other) <= position or other[position][0] != word for other in lists[1:]):
            break
        if max(other[position][1][1] for other in lists) > stable_frames:
            break
        agreed.append((word, span))
    return agreed


def finished_words(words: list, decoded_frames: int, end_gap: Optional[int]) -> list:
    """A beam's (word, (start, end)) list without its last word, unless `end_gap` frames follow it."""
    if end_gap is not None and words and decoded_frames - words[-1][1][1] >= end_gap:
        return words
    return words[:-1]


def safe_cut(beams, count: int) -> tuple[int, int]:
    """(words to commit, frame where pending frames restart) so that no beam's next word is split.

    The cut is after the last committed word in every beam; if some beam's next word starts
    before that, one word fewer is committed.
    """
    while count:
        cut = max(beam[2][count - 1][1][1] for beam in beams)
        if all(len(beam[2]) <= count or beam[2][count][1][0] >= cut for beam in beams):
            return count, cut
        count -= 1
    return 0, 0


def replay_frames(word: str, labels: list[str]) -> Optional[np.ndarray]:
    """(T, labels) log-probs that spell `word` with certainty (a blank frame between repeated
    labels); None if the labels have no word delimiter " " or blank "", or cannot spell it."""
    if " " not in labels or "" not in labels:
        return None
    blank = labels.index("")
    index = {label: i for i, label in enumerate(labels) if label and label != " "}
    longest = max(map(len, index), default=0)
    ids, position = [], 0
    while position < len(word):
        size = next((n for n in range(min(longest, len(word) - position), 0, -1)
                     if word[position:position + n] in index), 0)
        if not size:
            return None
        token = index[word[position:position + size]]
        ids += [blank, token] if ids and ids[-1] == token else [token]
        position += size
    frames = np.full((len(ids), len(labels)), REPLAY_FLOOR_LOGP)
    frames[np.arange(len(ids)), ids] = 0.0
    return frames


def strip_replayed(beams: list, word: str, replayed: int) -> list:
    """The beams whose first word is the replayed `word`, without it; frames counted after the replay."""
    kept = []
    for _, lm_state, words, logit_score, score in beams:
        if not words or words[0][0] != word:
            continue
        rest = [(w, (start - replayed, end - replayed)) for w, (start, end) in words[1:]]
        kept.append((" ".join(w for w, _ in rest), lm_state, rest, logit_score, score))
    return kept


def word_confidence(logprobs: np.ndarray, start: int, end: int) -> float:
    """Mean best-label posterior over a word's frames, in [0, 1]."""
    if end <= start:
        return 0.0
    return min(max(float(np.exp(logprobs[start:end].max(axis=-1)).mean()), 0.0), 1.0)
