"""Audio input: formats, resampling, down-mixing and clear errors."""

import numpy as np
import pytest
import soundfile

from xlsr_live.audio import AudioError, StreamResampler, check_sample_rate, iter_audio_blocks, read_audio, to_float32
from xlsr_live.constants import SAMPLE_RATE


def _tone(rate, seconds=1.0, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt, rate", [("WAV", 8_000), ("FLAC", 44_100), ("OGG", 48_000), ("WAV", 16_000)])
def test_read_resamples_to_16k(tmp_path, fmt, rate):
    """WAV/FLAC/OGG at any rate come back at 16 kHz with the right length and pitch."""
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, _tone(rate), rate, format=fmt)
    audio = read_audio(path)
    assert audio.dtype == np.float32
    assert abs(audio.size - SAMPLE_RATE) <= 32
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / audio.size - 440) < 5


def test_stereo_is_downmixed(tmp_path):
    """Channels are averaged to mono."""
    left, right = _tone(SAMPLE_RATE), np.zeros(SAMPLE_RATE, np.float32)
    soundfile.write(tmp_path / "st.wav", np.stack([left, right], 1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "st.wav"), left / 2, atol=1e-6)


def test_blocks_equal_whole_read(tmp_path):
    """Block-wise streaming read gives the same samples as a whole read."""
    soundfile.write(tmp_path / "a.wav", _tone(44_100, 3.0), 44_100)
    blocks = np.concatenate(list(iter_audio_blocks(tmp_path / "a.wav", block_seconds=0.7)))
    whole = read_audio(tmp_path / "a.wav")
    assert abs(blocks.size - whole.size) <= 2
    n = min(blocks.size, whole.size)
    np.testing.assert_allclose(blocks[1000 : n - 1000], whole[1000 : n - 1000], atol=2e-3)


@pytest.mark.parametrize("content", [b"", b"not audio at all"])
def test_unreadable_files_named(tmp_path, content):
    """Empty or non-audio files give an AudioError naming the file."""
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="bad.wav"):
        read_audio(path)
    with pytest.raises(AudioError, match="bad.wav"):
        list(iter_audio_blocks(path))


def test_missing_file_named(tmp_path):
    """A missing file says so."""
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "nope.wav")


def test_zero_length_wav(tmp_path):
    """A valid WAV header with no samples is an error, not an empty transcript."""
    soundfile.write(tmp_path / "z.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="no audio samples"):
        read_audio(tmp_path / "z.wav")


def test_int16_and_float_agree():
    """int16 input is scaled to [-1, 1) float32."""
    ints = np.array([0, 16_384, -32_768], np.int16)
    np.testing.assert_allclose(to_float32(ints), [0.0, 0.5, -1.0])


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan], np.float32), np.array([np.inf], np.float64)])
def test_non_finite_rejected(bad):
    """NaN or infinite samples are refused."""
    with pytest.raises(AudioError, match="NaN or infinite"):
        to_float32(bad)


def test_unsupported_dtype_named():
    """An int32 array names its dtype."""
    with pytest.raises(AudioError, match="int32"):
        to_float32(np.zeros(3, np.int32))


@pytest.mark.parametrize("rate", [0, -16_000, 1, 10_000_000, 16_000.5])
def test_absurd_sample_rates(rate):
    """Sample rates outside 4 kHz..384 kHz or non-integer are refused, naming the value."""
    with pytest.raises(AudioError, match=str(rate).split(".")[0]):
        check_sample_rate(rate)


def test_stream_resampler_split_invariant():
    """Chunked stateful resampling equals one-shot stateful resampling."""
    audio = _tone(8_000, 2.0)
    whole = StreamResampler(8_000).process(audio, last=True)
    resampler = StreamResampler(8_000)
    parts = [resampler.process(c) for c in np.array_split(audio, [1, 7, 500, 501, 9000])]
    parts.append(resampler.process(np.zeros(0, np.float32), last=True))
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
