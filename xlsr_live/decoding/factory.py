"""One decoder per utterance, made by a factory that builds the shared beam search only once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import UtteranceDecoder
from .beam import BeamAlphabet, BeamUtteranceDecoder, build_beam_decoder
from .greedy import GreedyUtteranceDecoder
from .options import DecoderOptions

if TYPE_CHECKING:  # the vocabulary's package (model/) imports torch
    from ..model.tokenizer import CTCVocabulary


class DecoderFactory:
    """Makes one decoder per utterance; the pyctcdecode decoder (and KenLM) is built once and shared."""

    def __init__(self, vocab: CTCVocabulary, options: DecoderOptions):
        self.vocab = vocab
        self.options = options
        self._beam_search = None

    def __call__(self) -> UtteranceDecoder:
        if self.options.kind == "beam":
            if self._beam_search is None:
                self._beam_search = build_beam_decoder(BeamAlphabet(self.vocab), self.options)
            return BeamUtteranceDecoder(self.vocab, self.options, self._beam_search)
        return GreedyUtteranceDecoder(self.vocab)
