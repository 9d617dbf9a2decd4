"""One decoder per utterance; the beam searches behind them (pyctcdecode + KenLM) are built once and shared."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Optional

from .base import UtteranceDecoder
from .beam import BeamAlphabet, BeamUtteranceDecoder, build_beam_decoder
from .greedy import GreedyUtteranceDecoder
from .options import DecoderOptions

if TYPE_CHECKING:  # the vocabulary's package (model/) imports torch
    from ..model.tokenizer import CTCVocabulary

log = logging.getLogger(__name__)


class BeamSearches:
    """pyctcdecode decoders, each with its loaded language model, built once per (labels, LM, alpha,
    beta) and shared by every stream that asks for the same; safe to use from several threads.

    Sharing is sound because decoding never changes a pyctcdecode decoder: `decode_beams` keeps its
    beams, caches and hotword scorer in local variables, and KenLM queries are read-only. Hotwords
    and the LM state after committed words stay per utterance (BeamUtteranceDecoder).
    """

    def __init__(self):
        self._built: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._built)

    def get(self, alphabet: BeamAlphabet, options: DecoderOptions):
        """The shared decoder for these labels and LM settings (built on first use; MissingExtraError)."""
        key = (tuple(alphabet.labels), options.kenlm_path, options.alpha, options.beta)
        with self._lock:  # concurrent first requests must not load the LM twice
            if key not in self._built:
                started = time.perf_counter()
                self._built[key] = build_beam_decoder(alphabet, options)
                log.info("beam search for %d labels%s built in %.2f s", len(alphabet.labels),
                         f" with LM {options.kenlm_path}" if options.kenlm_path else "", time.perf_counter() - started)
            return self._built[key]


class DecoderFactory:
    """Makes one decoder per utterance. Beam decoders all use one pyctcdecode decoder (and KenLM)
    from `beam_searches`: pass the same BeamSearches to every factory that should share it."""

    def __init__(self, vocab: CTCVocabulary, options: DecoderOptions, beam_searches: Optional[BeamSearches] = None):
        self.vocab = vocab
        self.options = options
        self.beam_searches = beam_searches if beam_searches is not None else BeamSearches()
        self._alphabet = BeamAlphabet(vocab) if options.kind == "beam" else None

    def prepare(self) -> None:
        """Build the shared beam search now (so a missing package or LM fails early)."""
        if self._alphabet is not None:
            self.beam_searches.get(self._alphabet, self.options)

    def __call__(self) -> UtteranceDecoder:
        if self._alphabet is not None:
            search = self.beam_searches.get(self._alphabet, self.options)
            return BeamUtteranceDecoder(self.vocab, self.options, search, self._alphabet)
        return GreedyUtteranceDecoder(self.vocab)
