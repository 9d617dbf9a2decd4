"""Offline (whole-file) transcription with bounded memory: overlapping windows, stitched logits.

Windows follow transformers' chunked ASR pipeline: each window is `chunk` samples long, steps by
`chunk - left - right`, the first window keeps its left stride and the last its right stride,
and the logits of the stride regions are dropped before decoding. Each window is normalised on
its own (as the pipeline's feature extractor does per chunk). This path is the reference the
streaming engine is measured against.

Decoding follows the streaming decoder choice (DecoderOptions, kind "auto" by default): greedy CTC
runs window by window; beam search (the checkpoint's `language_model/`, `--lm`, hotwords) keeps
the stitched log-probabilities (float32: about 22 MiB per hour for a 32-label vocabulary) and decodes
them once with pyctcdecode's `decode_beams`, as the pipeline does when it has a language model.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional

import numpy as np
import torch

from .audio import iter_audio_blocks
from .constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from .ctc import GreedyCTCDecoder, Word, normalize_text, runs_text, runs_to_words
from .decoding.options import DecoderOptions
from .model.loader import LoadedModel

if TYPE_CHECKING:
    from .decoding.factory import BeamSearches

MS = SAMPLE_RATE // 1000  # samples per millisecond


@dataclasses.dataclass(frozen=True)
class OfflineOptions:
    """Window geometry of offline inference, in milliseconds (multiples of 20 ms)."""

    chunk_ms: int = 20_000
    left_stride_ms: int = 2_000
    right_stride_ms: int = 2_000

    def __post_init__(self) -> None:
        for name in ("chunk_ms", "left_stride_ms", "right_stride_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or value % 20:
                raise ValueError(f"{name}={value!r}: must be a non-negative multiple of 20 ms")
        if self.right_stride_ms < 20:
            raise ValueError(
                f"right_stride_ms={self.right_stride_ms}: must be at least 20 ms (a window's last "
                "frame needs audio beyond the window)"
            )
        if self.chunk_ms - self.left_stride_ms - self.right_stride_ms < 20:
            raise ValueError(
                f"chunk_ms={self.chunk_ms} leaves no audio between left_stride_ms="
                f"{self.left_stride_ms} and right_stride_ms={self.right_stride_ms}"
            )

    @property
    def chunk_samples(self) -> int:
        return self.chunk_ms * MS

    def stride_frames(self, hop_samples: int = SAMPLES_PER_FRAME) -> tuple[int, int]:
        """(left, right) strides in frames of `hop_samples` samples (320; w2v-BERT adapters: 640)."""
        return self.left_stride_ms * MS // hop_samples, self.right_stride_ms * MS // hop_samples

    @property
    def step_samples(self) -> int:
        return (self.chunk_ms - self.left_stride_ms - self.right_stride_ms) * MS


@dataclasses.dataclass(frozen=True)
class Transcript:
    """Result of transcribing one input."""

    text: str
    words: tuple[Word, ...]
    duration: float  # seconds of audio


def iter_window_logits(
    model: LoadedModel, blocks: Iterable[np.ndarray], options: OfflineOptions = OfflineOptions()
) -> Iterator[np.ndarray]:
    """Yield the kept logits (frames, vocab) of consecutive windows; frames are contiguous."""
    chunk, step = options.chunk_samples, options.step_samples
    hop = model.config.hop_samples
    left, right = options.stride_frames(hop)
    buffer = np.zeros(0, dtype=np.float32)  # audio from the current window start on
    first = True
    for block in blocks:
        buffer = np.concatenate([buffer, block])  # grows to at most chunk + one block
        while buffer.size > chunk:  # more audio follows this window: it is not the last one
            logits = model.logits(buffer[:chunk])
            start = 0 if first else left
            yield logits[start : chunk // hop - right]
            buffer = buffer[step:]
            first = False
    if buffer.size:
        logits = model.logits(buffer)
        yield logits[0 if first else left :]


def transcribe_blocks(
    model: LoadedModel,
    blocks: Iterable[np.ndarray],
    options: OfflineOptions = OfflineOptions(),
    progress: Callable[[int], None] | None = None,
    decoder: DecoderOptions = DecoderOptions(),
    beam_searches: Optional[BeamSearches] = None,
) -> Transcript:
    """Transcribe a stream of 16 kHz float32 blocks; `decoder` as for streaming ("auto": beam search
    with the checkpoint's language model if it has one, else greedy); `beam_searches`: a shared
    BeamSearches (a server's), else one is built for this call."""
    from .decoding.lm import resolve_decoder

    decoder = resolve_decoder(decoder, model.source)
    samples = 0

    def counted(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal samples
        for block in source:
            samples += block.size
            if progress is not None:
                progress(block.size)
            yield block

    windows = iter_window_logits(model, counted(blocks), options)
    if decoder.kind == "beam":
        text, words = _beam_decode(model, windows, decoder, beam_searches)
    else:
        text, words = _greedy_decode(model, windows)
    return Transcript(text, tuple(words), samples / SAMPLE_RATE)


def _greedy_decode(model: LoadedModel, windows: Iterable[np.ndarray]) -> tuple[str, list[Word]]:
    """Greedy CTC over the windows' kept logits, window by window."""
    greedy = GreedyCTCDecoder(model.vocab)
    for logits in windows:
        greedy.advance(logits)
    words = runs_to_words(greedy.runs, model.vocab, frames_per_second=SAMPLE_RATE / model.config.hop_samples)
    return normalize_text(runs_text(greedy.runs, model.vocab)), words


def _beam_decode(model: LoadedModel, windows: Iterable[np.ndarray], decoder: DecoderOptions,
                 beam_searches: Optional[BeamSearches]) -> tuple[str, list[Word]]:
    """One beam search over the stitched, reduced log-probabilities of all windows."""
    from .decoding.beam import BeamAlphabet, decode_whole, log_softmax
    from .decoding.factory import BeamSearches

    alphabet = BeamAlphabet(model.vocab)
    search = (beam_searches if beam_searches is not None else BeamSearches()).get(alphabet, decoder)
    pieces = [alphabet.reduce(log_softmax(logits)).astype(np.float32) for logits in windows]
    logprobs = np.concatenate(pieces) if pieces else np.zeros((0, len(alphabet.labels)), np.float32)
    return decode_whole(search, logprobs, decoder, model.config.hop_samples)


def transcribe_file(
    model: LoadedModel,
    path: str | os.PathLike,
    options: OfflineOptions = OfflineOptions(),
    progress: Callable[[int], None] | None = None,
    decoder: DecoderOptions = DecoderOptions(),
    beam_searches: Optional[BeamSearches] = None,
) -> Transcript:
    """Transcribe one audio file (any rate and channel count) with bounded memory (see the module
    docstring for beam search); `decoder` and `beam_searches` as for transcribe_blocks."""
    with torch.inference_mode():
        return transcribe_blocks(model, iter_audio_blocks(path), options, progress, decoder, beam_searches)


def transcribe_array(model: LoadedModel, audio: np.ndarray, options: OfflineOptions = OfflineOptions(),
                     decoder: DecoderOptions = DecoderOptions()) -> Transcript:
    """Transcribe 16 kHz float32 mono audio held in memory."""
    return transcribe_blocks(model, [np.asarray(audio, dtype=np.float32)], options, decoder=decoder)
