"""Stream a file through the engine (the CLI's `transcribe FILE --stream`); the engine itself reads no files."""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

from .audio import AudioError, open_audio, to_float32
from .model.loader import LoadedModel
from .streaming.events import Event
from .streaming.options import StreamingOptions
from .streaming.recognizer import StreamingRecognizer

log = logging.getLogger(__name__)

BLOCK_MS = 100  # audio per feed() call, like a microphone callback


def stream_file(
    model: LoadedModel, path: str | os.PathLike, options: StreamingOptions = StreamingOptions(),
    realtime: bool = False, block_ms: int = BLOCK_MS,
) -> Iterator[Event]:
    """Yield the events of a file fed in `block_ms` blocks at its own sample rate.

    With `realtime=True` each block is fed no earlier than it would have been captured live.
    """
    import soundfile

    with open_audio(path) as handle:
        rate = handle.samplerate
        recognizer = StreamingRecognizer(model, options, sample_rate=rate)
        block = max(1, rate * block_ms // 1000)
        started = time.monotonic()
        fed = 0  # input samples
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.LibsndfileError) as exc:
                raise AudioError(f"{path}: cannot decode audio: {exc}") from exc
            if len(data) == 0:
                break
            fed += len(data)
            if realtime:
                delay = started + fed / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield from recognizer.feed(to_float32(data))
        log.debug("%s: streamed %d samples at %d Hz", path, fed, rate)
        yield from recognizer.flush()
