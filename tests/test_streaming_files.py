"""stream_file (the CLI hook) and bounded per-stream state on long inputs."""

import numpy as np
import pytest
import soundfile

from xlsr_live.audio import AudioError, resample
from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.file_stream import stream_file
from xlsr_live.streaming.events import Final
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer

WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)


def test_stream_file_equals_feeding(tiny_model, speech_audio, tmp_path):
    """A 22.05 kHz stereo file streamed in blocks gives the events of feeding its samples."""
    rate = 22_050
    mono = resample(speech_audio, SAMPLE_RATE, rate)
    path = tmp_path / "speech.wav"
    soundfile.write(path, np.stack([mono, mono], axis=1), rate, subtype="FLOAT")
    options = StreamingOptions(window=WINDOW)
    events = list(stream_file(tiny_model, path, options))
    rec = StreamingRecognizer(tiny_model, options, sample_rate=rate)
    assert events == rec.feed(mono) + rec.flush()
    assert sum(isinstance(e, Final) for e in events) == 2


def test_stream_file_unreadable(tiny_model, tmp_path):
    """A file that is not audio raises AudioError naming it."""
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav"):
        list(stream_file(tiny_model, path))


def test_long_utterance_state_is_bounded(tiny_model):
    """On a long ungated utterance, cached features and buffered audio stay within the window."""
    options = StreamingOptions(vad=VadOptions(enabled=False, max_utterance_ms=60_000), window=WINDOW,
                               endpoint=EndpointOptions(enabled=False))
    rec = StreamingRecognizer(tiny_model, options)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SAMPLE_RATE * 7)).astype(np.float32)
    rec.feed(audio)
    utterance = rec._utterances[0]
    window_frames = WINDOW.left_frames + WINDOW.chunk_frames + WINDOW.lookahead_frames + 2
    assert utterance.next_chunk >= 15
    assert utterance._cache.end - utterance._cache.first <= window_frames
    assert len(utterance.audio) <= window_frames * 320 + 400
