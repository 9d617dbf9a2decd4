"""Decoder options: which CTC decoder, its beam, language model and hotwords."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from ..validation import check

DECODER_KINDS = ("auto", "greedy", "beam")
DEFAULT_ALPHA = 0.5  # LM weight, unless the options or a language_model/attrs.json say otherwise
DEFAULT_BETA = 1.0  # word insertion bonus, likewise
DEFAULT_VOTE_MARGIN = 0.0  # only the best beam (and exact ties) vote on stable words (docs/performance.md)
DEFAULT_WORD_END_GAP_FRAMES = 5  # 100 ms at 20 ms frames after a beam's last word: it is finished
# a stable word may end this many frames (40 ms) into the lookahead: sooner than committed frames
# only, and the text stays the same for the same audio at another sample rate (docs/performance.md)
DEFAULT_STABLE_LOOKAHEAD_FRAMES = 2
# labels below this log-prob at a frame are not tried by the beam search: pyctcdecode's default.
# -3.0 halves the search's cost on the demo model but loses 0.6 WER points streaming and 2.4
# offline on the 15-minute held-out recording (docs/performance.md, session 6)
DEFAULT_TOKEN_MIN_LOGP = -5.0
# beam widths when the options leave beam_width at None. Streaming re-decodes the pending frames at
# every chunk, so its width is bounded by the load line (16 beam + LM sessions, docs/performance.md);
# a whole input is searched once, where 32 costs little and buys most of what width can: on the demo
# model's dev split (200 utterances, LM) WER 55.8 / 50.2 / 46.0 / 45.1 / 44.8 % at 8 / 16 / 32 / 64 /
# 100 (docs/decoding.md)
STREAMING_BEAM_WIDTH = 16
OFFLINE_BEAM_WIDTH = 32


@dataclasses.dataclass(frozen=True)
class DecoderOptions:
    """CTC decoding: "greedy" (incremental), "beam" (pyctcdecode, optional KenLM and hotwords), or
    "auto": beam search with the checkpoint's `language_model/` folder if it has one, else greedy.

    kenlm_path: a KenLM file (.arpa, .bin) or a `language_model/` folder (docs/decoding.md).
    stable_vote_margin: beam search commits a word to the stable text once the beams whose combined
    (acoustic + LM) log score is within this margin of the best beam's agree on it; None: every
    returned beam must agree (slower to commit). Stable text is never revised either way.
    word_end_gap_frames: a voting beam's last word may become stable once this many decoded frames
    (committed + lookahead) follow it without another word; None: it waits for the next word.
    stable_lookahead_frames: a stable word may end up to this many frames into the lookahead
    (decided on the window's peeked logits, one chunk earlier); 0: only inside the committed
    frames; None: anywhere in the lookahead.
    token_min_logp: at each frame the beam search tries only the labels with at least this
    log-probability (and the frame's best label); lower is wider and slower.
    beam_width: beams kept; None: STREAMING_BEAM_WIDTH while streaming, OFFLINE_BEAM_WIDTH for one
    search over a whole input (`width(offline=True)`).
    """

    kind: str = "auto"
    beam_width: Optional[int] = None
    kenlm_path: Optional[str] = None
    alpha: Optional[float] = None  # LM weight; None: attrs.json of the LM folder, else DEFAULT_ALPHA
    beta: Optional[float] = None  # word insertion bonus; None: attrs.json, else DEFAULT_BETA
    hotwords: tuple[str, ...] = ()
    hotword_weight: float = 10.0
    max_beam_frames: int = 750  # frames re-decoded at most; older undecided frames are committed greedily
    stable_vote_margin: Optional[float] = DEFAULT_VOTE_MARGIN
    word_end_gap_frames: Optional[int] = DEFAULT_WORD_END_GAP_FRAMES
    stable_lookahead_frames: Optional[int] = DEFAULT_STABLE_LOOKAHEAD_FRAMES
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP

    def __post_init__(self) -> None:
        check(self.kind in DECODER_KINDS, f"kind={self.kind!r} is not one of {DECODER_KINDS}")
        width = self.beam_width
        check(width is None or (isinstance(width, int) and not isinstance(width, bool) and width >= 1),
              f"beam_width={width!r} must be None or an int >= 1")
        check(self.kenlm_path is None or self.kind != "greedy", f"kenlm_path={self.kenlm_path!r} needs kind='beam'")
        check(isinstance(self.hotwords, tuple), f"hotwords={self.hotwords!r} must be a tuple of strings")
        check(self.max_beam_frames >= 50, f"max_beam_frames={self.max_beam_frames!r} must be >= 50")
        margin = self.stable_vote_margin
        check(margin is None or (isinstance(margin, (int, float)) and not isinstance(margin, bool)
                                 and math.isfinite(margin) and margin >= 0),
              f"stable_vote_margin={margin!r} must be None or a finite number >= 0")
        gap = self.word_end_gap_frames
        check(gap is None or (isinstance(gap, int) and not isinstance(gap, bool) and gap >= 1),
              f"word_end_gap_frames={gap!r} must be None or an int >= 1")
        ahead = self.stable_lookahead_frames
        check(ahead is None or (isinstance(ahead, int) and not isinstance(ahead, bool) and ahead >= 0),
              f"stable_lookahead_frames={ahead!r} must be None or an int >= 0")
        floor = self.token_min_logp
        check(isinstance(floor, (int, float)) and not isinstance(floor, bool) and math.isfinite(floor) and floor <= 0,
              f"token_min_logp={floor!r} must be a finite number <= 0")

    def width(self, offline: bool = False) -> int:
        """The beam width to search with: beam_width, or the default for streaming / a whole input."""
        if self.beam_width is not None:
            return self.beam_width
        return OFFLINE_BEAM_WIDTH if offline else STREAMING_BEAM_WIDTH
