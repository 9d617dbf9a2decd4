"""Shared fixtures: tiny random checkpoints and synthetic audio."""

import numpy as np
import pytest

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.model.testing import write_random_checkpoint


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random XLSR-kind checkpoint directory in Hugging Face layout."""
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny checkpoint loaded by xlsr-live."""
    from xlsr_live.model import load_model

    return load_model(tiny_model_dir)


@pytest.fixture
def tone_audio():
    """Two seconds of a 440 Hz tone with noise, float32 at 16 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _espeak(directory, text: str, name: str) -> np.ndarray:
    """Synthesize `text` with espeak-ng and read it back as 16 kHz float32."""
    import shutil
    import subprocess

    from xlsr_live.audio import read_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return read_audio(path)


@pytest.fixture(scope="session")
def speech_audio(tmp_path_factory):
    """Two espeak-ng sentences separated by silence, with silence around them (16 kHz float32)."""
    directory = tmp_path_factory.mktemp("speech")
    first = _espeak(directory, "hello world this is a test", "first")
    second = _espeak(directory, "second sentence", "second")
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    return np.concatenate([silence[: SAMPLE_RATE // 2], first, silence, second, silence])
