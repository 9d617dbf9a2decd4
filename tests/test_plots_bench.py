"""benchmarks/plots.py: per-word emission times and utterance spans from an event timeline."""

import pytest

import plots
from xlsr_live.ctc import Word
from xlsr_live.streaming.events import Final, Partial, SpeechEnd, SpeechStart

EMITTED = [
    (0.1, SpeechStart(0.0)),
    (1.5, Partial("", "helo", 0.0, 1.0)),
    (2.5, Partial("hello", " world", 0.0, 2.0)),
    (3.5, Partial("hello world", "", 0.0, 3.0)),
    (4.0, SpeechEnd(3.2)),
    (4.0, Final("hello world", 0.0, 3.2, (Word("hello", 0.3, 0.8, 0.9), Word("world", 1.2, 1.7, 0.9)))),
]


def test_word_times_record_first_partial_stable_and_final():
    """A word is first seen when a partial shows it exactly, stable when the stable text covers it."""
    rows = plots.word_times(EMITTED)
    assert [(r["word"], r["first_partial"], r["stable"], r["final"]) for r in rows] == [
        ("hello", 2.5, 2.5, 4.0), ("world", 2.5, 3.5, 4.0)]


def test_segments_pair_speech_start_and_end():
    """Utterance spans come from SpeechStart / SpeechEnd times (stream time, not emission time)."""
    assert plots.segments(EMITTED) == [(0.0, 3.2)]


def test_plots_write_png_files(tmp_path):
    """Both pictures render to non-empty PNG files."""
    pytest.importorskip("matplotlib")
    import numpy as np

    plots.plot_timeline(np.zeros(16_000 * 4, np.float32), EMITTED, tmp_path / "t.png", "test")
    rows = [{"chunk_ms": c, "rtf": 0.1, "first_partial": {"p50": 1.0, "p95": 1.5},
             "stable": {"p50": 1.2, "p95": 2.0}} for c in (500, 1000)]
    plots.plot_chunks(rows, tmp_path / "c.png", "test")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "c.png").stat().st_size > 1000
