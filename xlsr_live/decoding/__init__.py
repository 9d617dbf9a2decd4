"""CTC decoders for one utterance at a time: greedy and beam search (pyctcdecode, KenLM, hotwords)."""

from .base import Hypothesis, UtteranceDecoder
from .factory import BeamSearches, DecoderFactory
from .options import DecoderOptions

__all__ = ["BeamSearches", "DecoderFactory", "DecoderOptions", "Hypothesis", "UtteranceDecoder"]
