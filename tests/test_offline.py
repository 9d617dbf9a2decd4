"""Offline windowed transcription: frame alignment of stitched windows and bounded buffers."""

import numpy as np
import pytest

from xlsr_live.constants import SAMPLES_PER_FRAME
from xlsr_live.model.config import Wav2Vec2Config
from xlsr_live.offline import OfflineOptions, iter_window_logits, transcribe_array


class RampModel:
    """Stands in for LoadedModel: frame i's single logit is the input sample at 320 * i."""

    config = Wav2Vec2Config(vocab_size=1)

    def __init__(self):
        self.calls = []

    def logits(self, audio):
        self.calls.append(audio.size)
        frames = self.config.num_frames(audio.size)
        return audio[: frames * SAMPLES_PER_FRAME : SAMPLES_PER_FRAME, None].copy()


@pytest.mark.parametrize("seconds", [0.5, 3.0, 20.0, 20.01, 37.3, 95.0])
def test_stitched_frames_are_contiguous(seconds):
    """Kept frames of all windows cover every frame of the input exactly once, in order."""
    total = int(seconds * 16_000)
    ramp = np.arange(total, dtype=np.float32)
    blocks = np.array_split(ramp, max(1, total // 7_000))
    model = RampModel()
    stitched = np.concatenate(list(iter_window_logits(model, blocks, OfflineOptions(8_000, 1_000, 1_000))))[:, 0]
    expected_frames = model.config.num_frames(total)
    np.testing.assert_array_equal(stitched, np.arange(expected_frames) * SAMPLES_PER_FRAME)
    assert max(model.calls) <= 8_000 * 16


class CountingModel:
    """Delegates to a LoadedModel and records the input size of every logits() call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def logits(self, audio):
        self.calls.append(audio.size)
        return self.model.logits(audio)


def test_single_window_equals_direct(tiny_model, tiny_model_dir, tone_audio):
    """Input shorter than a window is one plain forward pass: its text is transformers' decode of that pass."""
    from transformers import Wav2Vec2CTCTokenizer

    counting = CountingModel(tiny_model)
    result = transcribe_array(counting, tone_audio)
    assert counting.calls == [tone_audio.size]
    ids = tiny_model.logits(tone_audio).argmax(-1)
    expected = Wav2Vec2CTCTokenizer.from_pretrained(str(tiny_model_dir)).decode(ids, skip_special_tokens=True)
    assert expected and result.text == expected
    assert [w.word for w in result.words] == expected.split()
    assert result.duration == pytest.approx(2.0)


def test_tiny_input_gives_empty_transcript(tiny_model):
    """Fewer samples than one frame's receptive field decode to nothing, without error."""
    result = transcribe_array(tiny_model, np.zeros(100, np.float32))
    assert result.text == "" and result.words == ()


@pytest.mark.parametrize("kwargs", [dict(chunk_ms=1000, left_stride_ms=500, right_stride_ms=500),
                                    dict(chunk_ms=1010), dict(right_stride_ms=0), dict(left_stride_ms=-20)])
def test_bad_window_options_named(kwargs):
    """Impossible window geometries are refused with the offending value."""
    with pytest.raises(ValueError, match="_ms"):
        OfflineOptions(**kwargs)
