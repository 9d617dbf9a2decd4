"""`xlsr-live mic` through real PortAudio, capturing from an ALSA file-plugin device."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from xlsr_live.defaults import RecognizerOptions, load_recognizer
from xlsr_live.streaming.recognizer import StreamingRecognizer

ASOUNDRC = """pcm.!default {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
"""


def _speechlike(seconds=3.0, rate=16_000):
    """Voiced-looking audio (harmonic bursts) that webrtcvad takes for speech, then silence."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((140, 280, 420, 700, 1100)))
    envelope = (np.sin(2 * np.pi * 3 * t) > -0.3).astype(float)
    audio = np.concatenate([np.zeros(rate // 2), 0.3 * voiced * envelope, np.zeros(rate)])
    return (audio * 20_000).astype(np.int16)


@pytest.fixture
def alsa_home(tmp_path):
    """A HOME whose ~/.asoundrc makes ALSA's default capture device read a raw PCM file."""
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"PortAudio/sounddevice unavailable on this machine: {exc}")
    audio = _speechlike()
    raw = tmp_path / "capture.raw"
    raw.write_bytes(audio.tobytes())
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    return tmp_path, audio


def _run_mic(home, model_dir, *extra):
    env = dict(os.environ, HOME=str(home))
    return subprocess.run([sys.executable, "-m", "xlsr_live.cli", "mic", "--model", str(model_dir), *extra],
                          env=env, capture_output=True, text=True, timeout=120)


def test_mic_captures_through_portaudio(alsa_home, tiny_model_dir, tiny_model):
    """Captured audio reaches the engine: the first final equals the engine's on the same samples."""
    home, audio = alsa_home
    proc = _run_mic(home, tiny_model_dir, "--format", "jsonl", "--seconds", "4")
    if proc.returncode == 1 and "cannot open an audio input device" in proc.stderr:
        pytest.skip(f"no ALSA capture device could be opened here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    finals = [e for e in events if e["type"] == "final"]
    assert events[0]["type"] == "speech_start" and finals
    chosen = load_recognizer(RecognizerOptions(model=str(tiny_model_dir)))  # what the command chose
    recognizer = StreamingRecognizer(chosen.model, chosen.streaming)
    expected = [e for e in recognizer.feed(audio) + recognizer.flush() if e.type == "final"]
    assert finals[0]["text"] == expected[0].text
    assert finals[0]["start"] == pytest.approx(expected[0].start, abs=0.05)


def test_mic_without_device_is_one_line_error(tmp_path, tiny_model_dir):
    """No capture device: a one-line error and exit code 1, no traceback."""
    pytest.importorskip("sounddevice")
    if shutil.which("arecord") and subprocess.run(["arecord", "-l"], capture_output=True, text=True).stdout.strip():
        pytest.skip("this machine has a real sound card")
    proc = _run_mic(tmp_path, tiny_model_dir)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "audio input device" in proc.stderr
