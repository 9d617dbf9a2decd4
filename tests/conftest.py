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
