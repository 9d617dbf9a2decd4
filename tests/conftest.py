"""Shared fixtures: tiny random checkpoints and synthetic audio."""

import numpy as np
import pytest

from needs import missing_tools, require_tool, under_ci

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.model.testing import write_random_checkpoint


def pytest_terminal_summary(terminalreporter):
    """Say at the end (also under -q) which test tools are missing: their tests skipped, or failed under CI."""
    missing = missing_tools()
    if missing:
        effect = "failed (CI=true)" if under_ci() else "were skipped (reasons: pytest -ra; install: make test-deps)"
        terminalreporter.write_line(f"missing test tools: {', '.join(missing)}: the tests that need them {effect}",
                                    yellow=True)


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
    import subprocess

    from xlsr_live.audio import read_audio

    espeak = require_tool("espeak-ng", "no synthetic speech for this test")
    path = directory / f"{name}.wav"
    subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True)
    return read_audio(path)


@pytest.fixture(scope="session")
def speech_audio(tmp_path_factory):
    """Two espeak-ng sentences separated by silence, with silence around them (16 kHz float32)."""
    directory = tmp_path_factory.mktemp("speech")
    first = _espeak(directory, "hello world this is a test", "first")
    second = _espeak(directory, "second sentence", "second")
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    return np.concatenate([silence[: SAMPLE_RATE // 2], first, silence, second, silence])


@pytest.fixture(scope="session")
def wordy_model(tiny_model_dir, speech_audio, tmp_path_factory):
    """The tiny checkpoint with its CTC head's bias levelled on the speech fixture and tilted towards
    blank and the word delimiter: it emits many changing words on speech (the random model emits one
    long word), so that properties of words and stable text cannot hold trivially."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from xlsr_live.model import load_model

    directory = tmp_path_factory.mktemp("wordy")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    mean = torch.from_numpy(load_model(tiny_model_dir).logits(speech_audio).mean(axis=0))
    weights = load_file(str(directory / "model.safetensors"))
    bias = weights["lm_head.bias"] - mean
    bias[0] += 0.5  # <pad>, the CTC blank
    bias[4] += 0.6  # "|", the word delimiter
    weights["lm_head.bias"] = bias.contiguous()
    save_file(weights, str(directory / "model.safetensors"))
    return load_model(directory)


LM_CORPUS = ["hello world", "hello there", "the world is big", "say hello to the world"]


@pytest.fixture(scope="session")
def lm_checkpoint(tmp_path_factory):
    """A tiny random checkpoint with a language_model/ folder (a bigram ARPA of LM_CORPUS, alpha 1,
    beta 0.5) written by pyctcdecode's own LanguageModel.save_to_dir, as checkpoints ship them."""
    pytest.importorskip("pyctcdecode")
    kenlm = pytest.importorskip("kenlm")
    from pyctcdecode.language_model import LanguageModel

    from xlsr_live.decoding.testing import write_arpa

    directory = write_random_checkpoint(tmp_path_factory.mktemp("with_lm"))
    arpa = write_arpa(tmp_path_factory.mktemp("arpa") / "bigram.arpa", [s.split() for s in LM_CORPUS])
    unigrams = sorted({w for s in LM_CORPUS for w in s.split()})
    (directory / "language_model").mkdir()
    LanguageModel(kenlm.Model(str(arpa)), unigrams, alpha=1.0, beta=0.5).save_to_dir(str(directory / "language_model"))
    return directory


@pytest.fixture(scope="session")
def lm_model(lm_checkpoint):
    """The checkpoint with a language model, loaded by xlsr-live."""
    from xlsr_live.model import load_model

    return load_model(lm_checkpoint)
