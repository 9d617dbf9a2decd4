"""Decoder options: which CTC decoder, its beam, language model and hotwords."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..validation import check

DECODER_KINDS = ("greedy", "beam")


@dataclasses.dataclass(frozen=True)
class DecoderOptions:
    """CTC decoding: "greedy" (incremental) or "beam" (pyctcdecode, optional KenLM and hotwords)."""

    kind: str = "greedy"
    beam_width: int = 16
    kenlm_path: Optional[str] = None
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word insertion bonus
    hotwords: tuple[str, ...] = ()
    hotword_weight: float = 10.0
    max_beam_frames: int = 750  # frames re-decoded at most; older undecided frames are committed greedily

    def __post_init__(self) -> None:
        check(self.kind in DECODER_KINDS, f"kind={self.kind!r} is not 'greedy' or 'beam'")
        check(isinstance(self.beam_width, int) and self.beam_width >= 1, f"beam_width={self.beam_width!r} must be >= 1")
        check(self.kenlm_path is None or self.kind == "beam", f"kenlm_path={self.kenlm_path!r} needs kind='beam'")
        check(isinstance(self.hotwords, tuple), f"hotwords={self.hotwords!r} must be a tuple of strings")
        check(self.max_beam_frames >= 50, f"max_beam_frames={self.max_beam_frames!r} must be >= 50")
