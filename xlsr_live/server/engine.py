"""The small interface the server needs from the streaming engine, and its adapter to the real one.

The server never calls the model from the event loop: recognizers only buffer audio (`push`),
hand out windows (`next_job`) and turn logits into events (`complete`); the micro-batcher runs
`Engine.run_jobs` for windows of many sessions in one forward pass on its worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from ..audio import check_sample_rate
from .options import StreamOptions

log = logging.getLogger(__name__)


class SplitRecognizer(Protocol):
    """Per-stream state of the engine's split API (see docs/streaming.md)."""

    def push(self, audio: np.ndarray) -> list: ...

    def next_job(self) -> Optional[Any]: ...

    def complete(self, job: Any, logits: Any) -> list: ...

    def end(self) -> list: ...

    def reset(self) -> None: ...


class Engine(Protocol):
    """Shared by all sessions: makes recognizers, runs batches of their windows."""

    def create(self, options: StreamOptions) -> SplitRecognizer: ...

    def run_jobs(self, jobs: Sequence[Any]) -> list: ...


class ModelEngine:
    """The real engine: one loaded model, one `StreamingRecognizer` per stream.

    Beam search (pyctcdecode and its loaded KenLM) is built once per LM setting, at start-up for
    the server's default decoder, and shared by every session; hotwords stay per session.
    """

    def __init__(self, model, streaming_options=None, info: Optional[dict] = None):
        """`info`: what was chosen at start-up (device, dtype, windows, decoder), shown by /healthz."""
        from ..decoding import BeamSearches, DecoderFactory
        from ..decoding.lm import resolve_decoder
        from ..streaming.options import StreamingOptions

        self.model = model
        options = streaming_options or StreamingOptions()
        # decoder "auto": the checkpoint's language_model/ folder with beam search, if it has one
        self.streaming_options = dataclasses.replace(options, decoder=resolve_decoder(options.decoder, model.source))
        self.beam_searches = BeamSearches()
        DecoderFactory(model.vocab, self.streaming_options.decoder, self.beam_searches).prepare()
        self.info = dict(info or {})

    def describe(self) -> dict:
        """The start-up choices (a copy)."""
        return dict(self.info)

    def _options_for(self, options: StreamOptions):
        """Engine options for one stream: the server's defaults with the client's requests."""
        base = self.streaming_options
        decoder = base.decoder
        if options.lm is True and decoder.kenlm_path is None:
            raise ValueError("lm=true was requested but this server has no language model")
        if options.lm is False and decoder.kenlm_path is not None:
            decoder = dataclasses.replace(decoder, kenlm_path=None)
        if options.hotwords:
            decoder = dataclasses.replace(decoder, kind="beam", hotwords=tuple(options.hotwords))
        return dataclasses.replace(base, decoder=decoder, emit_partials=base.emit_partials and options.partials)

    def create(self, options: StreamOptions) -> SplitRecognizer:
        """A fresh recognizer for one stream; ValueError names a bad sample rate or option."""
        from ..decoding import DecoderFactory
        from ..streaming.recognizer import StreamingRecognizer

        rate = check_sample_rate(options.sample_rate)
        model = self._model_for(options.language)
        stream_options = self._options_for(options)
        decoders = DecoderFactory(model.vocab, stream_options.decoder, self.beam_searches)
        return StreamingRecognizer(model, stream_options, sample_rate=rate, decoders=decoders)

    def _model_for(self, language: Optional[str]):
        """The model in the stream's language (MMS: adapters read on first use, then shared by every
        stream in it); ValueError names a language the model lacks, without server paths."""
        if language is None:
            return self.model
        try:
            return self.model.with_language(language)
        except ValueError as exc:
            log.warning("language %r refused: %s", language, exc)
            adapters = self.model.adapters
            available = ", ".join(adapters.languages()[:20]) if adapters is not None else "none (no language adapters)"
            raise ValueError(f"language {language!r} is not available; available: {available}") from None

    def run_jobs(self, jobs: Sequence[Any]) -> list:
        """One padded forward pass over windows of any sessions (runs on the batch worker thread)."""
        from ..streaming.windows import run_jobs

        return run_jobs(self.model, list(jobs))
