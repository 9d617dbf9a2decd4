"""Transcript output formats: text, JSON, SubRip (SRT) and WebVTT."""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from .ctc import Word

FORMATS = ("text", "json", "srt", "vtt")
CUE_MAX_SECONDS = 6.0
CUE_MAX_CHARS = 42
CUE_MAX_GAP_SECONDS = 0.8


def transcript_json(path: str, text: str, words: Sequence[Word], duration: float) -> str:
    """One JSON object: file, text, words (word/start/end/conf), duration in seconds."""
    return json.dumps({
        "file": path,
        "text": text,
        "duration": round(duration, 3),
        "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                   "conf": round(w.conf, 3)} for w in words],
    }, ensure_ascii=False)


def cues(words: Sequence[Word]) -> list[list[Word]]:
    """Group words into subtitle cues: break at long pauses, long cues, or long lines."""
    groups: list[list[Word]] = []
    for word in words:
        if groups:
            group = groups[-1]
            chars = sum(len(w.word) + 1 for w in group) + len(word.word)
            if (word.start - group[-1].end <= CUE_MAX_GAP_SECONDS
                    and word.end - group[0].start <= CUE_MAX_SECONDS and chars <= CUE_MAX_CHARS):
                group.append(word)
                continue
        groups.append([word])
    return groups


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def subtitles(words: Iterable[Word], kind: str) -> str:
    """SRT or VTT document of the words."""
    separator = "," if kind == "srt" else "."
    lines = ["WEBVTT", ""] if kind == "vtt" else []
    for index, group in enumerate(cues(list(words)), start=1):
        if kind == "srt":
            lines.append(str(index))
        start, end = _timestamp(group[0].start, separator), _timestamp(group[-1].end, separator)
        lines += [f"{start} --> {end}", " ".join(w.word for w in group), ""]
    return "\n".join(lines)
