"""Results of recognition as dataclasses; turned into JSON only at the protocol edge.

Times are seconds of stream time (from the first sample fed since the last reset).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Union

from ..ctc import Word


@dataclasses.dataclass(frozen=True)
class SpeechStart:
    """The VAD heard speech begin (pre-roll included)."""

    time: float
    type: str = dataclasses.field(default="speech_start", init=False)


@dataclasses.dataclass(frozen=True)
class SpeechEnd:
    """The utterance ended (VAD hangover, model endpoint, forced cut, or end of stream)."""

    time: float
    reason: str = "silence"
    type: str = dataclasses.field(default="speech_end", init=False)


@dataclasses.dataclass(frozen=True)
class Partial:
    """Hypothesis of the current utterance: `stable` is never revised, `unstable` may change."""

    stable: str
    unstable: str
    start: float
    end: float
    type: str = dataclasses.field(default="partial", init=False)

    @property
    def text(self) -> str:
        """Whole hypothesis so far."""
        return (self.stable + self.unstable).strip()


@dataclasses.dataclass(frozen=True)
class Final:
    """One utterance's final result; its text starts with the last stable text."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()
    type: str = dataclasses.field(default="final", init=False)


Event = Union[SpeechStart, SpeechEnd, Partial, Final]


def event_to_dict(event: Event, ndigits: int = 3) -> dict[str, Any]:
    """JSON-ready dict of an event with rounded times (the native protocol's message shape)."""
    out = dataclasses.asdict(event)
    for key in ("time", "start", "end"):
        if key in out:
            out[key] = round(out[key], ndigits)
    if "words" in out:
        out["words"] = [
            {"word": w["word"], "start": round(w["start"], ndigits), "end": round(w["end"], ndigits),
             "conf": round(w["conf"], ndigits)}
            for w in out["words"]
        ]
    return out
