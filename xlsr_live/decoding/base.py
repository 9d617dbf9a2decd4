"""The interface every per-utterance decoder implements, and what it returns after each chunk."""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import numpy as np

from ..constants import SAMPLES_PER_FRAME
from ..ctc import Word


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """Text after one chunk: `stable` never changes later; `unstable` is the rest (may start with a space)."""

    stable: str
    unstable: str


@runtime_checkable
class UtteranceDecoder(Protocol):
    """Decodes one utterance chunk by chunk: committed logits are final, the lookahead is peeked.

    `trailing_blank_frames`: silent frames at the end of the committed frames (for endpointing).
    """

    trailing_blank_frames: int

    @property
    def has_text(self) -> bool:
        """True once the utterance has any committed or hypothesised text."""

    def advance(self, committed: np.ndarray, lookahead: np.ndarray) -> Hypothesis:
        """Commit frames `committed` (T, V) of logits; peek at `lookahead` (T', V)."""

    def finish(self, start_sample: int, hop_samples: int = SAMPLES_PER_FRAME) -> tuple[str, list[Word]]:
        """Final text and words; `start_sample` (16 kHz stream samples) places frame 0 in time,
        `hop_samples` is the model's frame (320; w2v-BERT adapters: 640)."""
