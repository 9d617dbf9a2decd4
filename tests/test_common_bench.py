"""benchmarks/_common.py: percentiles, models by name, the shared speech loop."""

from pathlib import Path

import numpy as np

import _common


def test_percentile_rounds_scales_and_handles_no_values():
    """Percentiles are rounded after scaling; no values give the `empty` value."""
    values = [0.1, 0.2, 0.3, 0.4]
    assert _common.percentile(values, 50) == 0.25
    assert _common.percentile(values, 100, digits=1, scale=1000) == 400.0
    assert _common.percentile([], 95) is None
    assert np.isnan(_common.percentile([], 95, empty=float("nan")))
    assert _common.percentiles(values) == {"p50": 0.25, "p95": 0.385}
    assert _common.percentiles([]) == {"p50": None, "p95": None}


def test_model_path_names(tmp_path):
    """'tiny' writes a fresh random checkpoint; paths and other names pass through unchanged."""
    tiny = Path(_common.model_path("tiny"))
    assert (tiny / "model.safetensors").is_file() and (tiny / "vocab.json").is_file()
    assert _common.model_path("demo") == "demo"
    assert _common.model_path(str(tmp_path)) == str(tmp_path)


def test_loop_audio_is_a_minute_of_speech_and_pauses():
    """The soak loop is at least a minute of 16 kHz float32 with silent gaps between sentences."""
    audio = _common.loop_audio()
    assert audio.dtype == np.float32 and audio.size >= 60 * _common.SAMPLE_RATE
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    silent = (np.abs(frames).max(axis=1) == 0).mean()
    assert 0.05 < silent < 0.8

