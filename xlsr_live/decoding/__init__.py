"""CTC decoders for one utterance at a time: greedy and beam search (pyctcdecode, KenLM, hotwords)."""

from .base import Hypothesis, UtteranceDecoder
from .factory import DecoderFactory
from .options import DecoderOptions

__all__ = ["DecoderFactory", "DecoderOptions", "Hypothesis", "UtteranceDecoder"]
