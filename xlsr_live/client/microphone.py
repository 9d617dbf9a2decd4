"""Microphone capture through sounddevice (PortAudio): int16 blocks handed over by a queue."""

from __future__ import annotations

import contextlib
import queue
from typing import Callable, Iterator

import numpy as np

BLOCK_MS = 100  # capture block length
QUEUE_BLOCKS = 600  # one minute of blocks before capture starts dropping (consumer stalled)


class MicrophoneError(RuntimeError):
    """PortAudio is missing or no input device can be opened."""


def _sounddevice():
    try:
        import sounddevice
    except ImportError as exc:
        raise MicrophoneError("microphone capture needs sounddevice: pip install 'xlsr-live[mic]'") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise MicrophoneError(f"PortAudio is not installed ({exc}); on Debian: apt-get install libportaudio2") from exc
    return sounddevice


@contextlib.contextmanager
def microphone(sample_rate: int = 16_000, device: str | int | None = None,
               on_block: Callable[[np.ndarray], None] | None = None) -> Iterator["MicrophoneStream"]:
    """Open the input device; yields a stream whose `blocks()` iterates captured int16 audio.

    With `on_block`, each block is handed to that callable (on PortAudio's thread) instead.
    """
    sd = _sounddevice()
    blocks: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
    stream = MicrophoneStream(blocks)

    def callback(indata, frames, time_info, status):  # PortAudio's thread: hand over, never block
        if on_block is not None:
            on_block(indata[:, 0].copy())
            return
        try:
            blocks.put_nowait(indata[:, 0].copy())
        except queue.Full:
            stream.dropped += 1

    try:
        handle = sd.InputStream(samplerate=sample_rate, channels=1, dtype="int16", device=device,
                                blocksize=sample_rate * BLOCK_MS // 1000, callback=callback)
    except Exception as exc:  # PortAudioError, ValueError for unknown devices
        raise MicrophoneError(f"cannot open an audio input device ({device or 'default'}): {exc}") from exc
    with handle:
        yield stream


class MicrophoneStream:
    """Blocks captured by PortAudio's thread, read by the caller's thread."""

    def __init__(self, blocks: queue.Queue):
        self._blocks = blocks
        self.dropped = 0  # blocks lost because the consumer fell a minute behind

    def blocks(self, timeout_s: float = 2.0) -> Iterator[np.ndarray]:
        """Captured int16 blocks as they arrive; stops if the device delivers nothing for timeout_s."""
        while True:
            try:
                yield self._blocks.get(timeout=timeout_s)
            except queue.Empty:
                return
