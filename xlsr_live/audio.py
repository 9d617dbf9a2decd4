"""Audio at the edges: reading files, sample formats, resampling to 16 kHz (soxr), down-mixing."""

from __future__ import annotations

import os

import numpy as np

from .constants import SAMPLE_RATE

INT16_SCALE = 32_768.0
MAX_SAMPLE_RATE = 384_000  # highest input rate accepted (studio interfaces)
MIN_SAMPLE_RATE = 4_000


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, non-finite, or an absurd sample rate."""


def check_sample_rate(rate: int) -> int:
    """Return `rate` as int if it is a usable input sample rate, else raise AudioError naming it."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) and not float(rate).is_integer():
        raise AudioError(f"sample rate {rate!r} is not an integer number of Hz")
    rate = int(rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {rate} Hz is outside the supported {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    return rate


def to_float32(audio: np.ndarray) -> np.ndarray:
    """int16 or float samples (mono, or (samples, channels) to down-mix) -> finite float32 mono
    in [-1, 1] (float input beyond full scale is clipped)."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / INT16_SCALE
    elif audio.dtype in (np.float32, np.float64):
        audio = audio.astype(np.float32, copy=False)
    else:
        raise AudioError(f"audio dtype {audio.dtype} is not supported; use int16 or float32")
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    elif audio.ndim != 1:
        raise AudioError(f"audio of shape {audio.shape} is neither mono (n,) nor (n, channels)")
    if not np.isfinite(audio).all():
        raise AudioError("audio contains NaN or infinite samples")
    # float audio beyond full scale is clipped like int16 would be: huge finite values would
    # otherwise overflow the VAD's int16 conversion and the normalisation statistics (NaN)
    return np.clip(audio, -1.0, 1.0, dtype=np.float32)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a whole float32 signal (soxr, high quality)."""
    if rate == target or audio.size == 0:
        return audio
    import soxr

    return soxr.resample(audio, rate, target, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """Stateful resampler to 16 kHz: chunks in, chunks out, same result however audio is split."""

    def __init__(self, rate: int, target: int = SAMPLE_RATE):
        self.rate = check_sample_rate(rate)
        self.target = target
        self._stream = None
        if self.rate != target:
            import soxr

            self._stream = soxr.ResampleStream(self.rate, target, 1, dtype="float32", quality="HQ")

    def process(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one chunk of float32 mono audio; `last=True` drains the filter."""
        if self._stream is None:
            return audio
        return self._stream.resample_chunk(audio, last=last)


def read_audio(path: str | os.PathLike) -> np.ndarray:
    """Read WAV/FLAC/OGG (anything libsndfile reads) as 16 kHz float32 mono; AudioError names it."""
    import soundfile

    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"{path}: cannot read audio: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    audio = to_float32(data)
    return resample(audio, int(rate))


def audio_info_seconds(path: str | os.PathLike) -> float:
    """Duration of an audio file in seconds without decoding it."""
    import soundfile

    info = soundfile.info(str(path))
    return info.frames / info.samplerate


def open_audio(path: str | os.PathLike):
    """An open soundfile.SoundFile; AudioError naming the file if it is missing or unreadable."""
    import soundfile

    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    try:
        return soundfile.SoundFile(str(path))
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"{path}: cannot read audio: {exc}") from exc


def iter_audio_blocks(path: str | os.PathLike, block_seconds: float = 30.0):
    """Yield 16 kHz float32 mono blocks of a file, so memory stays bounded for long recordings."""
    import soundfile

    with open_audio(path) as handle:
        if handle.frames == 0:
            raise AudioError(f"{path}: the file holds no audio samples")
        resampler = StreamResampler(handle.samplerate)
        block = max(1, int(block_seconds * handle.samplerate))
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.LibsndfileError) as exc:
                raise AudioError(f"{path}: cannot decode audio: {exc}") from exc
            last = data.shape[0] < block
            out = resampler.process(to_float32(data), last=last)
            if out.size:
                yield out
            if last:
                return
