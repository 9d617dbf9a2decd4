"""Shared decoders in the server: one beam search (and LM) for all sessions, decoding off the event loop."""

import asyncio
import threading

import numpy as np
import pytest
from server_fake import FakeEngine, FakeRecognizer, level_audio

from xlsr_live.decoding import DecoderOptions
from xlsr_live.server.batcher import MicroBatcher
from xlsr_live.server.engine import ModelEngine
from xlsr_live.server.metrics import Metrics
from xlsr_live.server.options import StreamOptions
from xlsr_live.server.session import RecognitionSession
from xlsr_live.streaming.options import StreamingOptions, WindowOptions

WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)


def _record_searches(monkeypatch):
    """(builds, searches): pyctcdecode decoders built, and the one each utterance decoder got."""
    from xlsr_live.decoding import factory

    builds, searches = [], []
    build = factory.build_beam_decoder
    monkeypatch.setattr(factory, "build_beam_decoder", lambda *a: builds.append(build(*a)) or builds[-1])

    class Recording(factory.BeamUtteranceDecoder):
        def __init__(self, vocab, options, decoder=None, alphabet=None):
            super().__init__(vocab, options, decoder, alphabet)
            searches.append(self.decoder)

    monkeypatch.setattr(factory, "BeamUtteranceDecoder", Recording)
    return builds, searches


def test_one_beam_search_for_many_sessions(tiny_model, monkeypatch):
    """Eight sessions (some with their own hotwords) all decode with the one beam search built at start-up."""
    pytest.importorskip("pyctcdecode")
    builds, searches = _record_searches(monkeypatch)
    options = StreamingOptions(window=WINDOW, decoder=DecoderOptions(kind="beam", beam_width=4))
    engine = ModelEngine(tiny_model, options)
    assert len(builds) == 1  # built before any session
    audio = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 2)).astype(np.float32)
    for index in range(8):
        recognizer = engine.create(StreamOptions(hotwords=("hello",) if index % 2 else ()))
        recognizer.feed(audio)
        recognizer.flush()
    assert len(searches) >= 8 and all(search is builds[0] for search in searches)
    assert len(builds) == 1 and len(engine.beam_searches) == 1


def test_greedy_server_shares_one_search_among_hotword_sessions(tiny_model, monkeypatch):
    """A greedy server builds no beam search until a hotword session asks, then one for all of them."""
    pytest.importorskip("pyctcdecode")
    builds, searches = _record_searches(monkeypatch)
    engine = ModelEngine(tiny_model, StreamingOptions(window=WINDOW))
    assert builds == []
    audio = (0.1 * np.random.default_rng(1).standard_normal(16_000 * 2)).astype(np.float32)
    for words in (("alpha",), ("beta", "gamma"), ("delta",)):
        recognizer = engine.create(StreamOptions(hotwords=words))
        recognizer.feed(audio)
        recognizer.flush()
    assert len(builds) == 1 and len(searches) >= 3 and all(s is builds[0] for s in searches)


class SlowRecognizer(FakeRecognizer):
    """A fake whose decoding (complete) waits until the test lets it go, like a slow beam search."""

    def __init__(self, sample_rate, entered, gate):
        super().__init__(sample_rate)
        self.entered, self.gate = entered, gate

    def complete(self, job, logits):
        self.entered.set()
        self.gate.wait(timeout=10)  # the bound only keeps a failing run from hanging
        return super().complete(job, logits)


def test_slow_decoding_does_not_delay_other_sessions():
    """While one session's decoding is stuck, another session's audio is recognised and answered."""
    entered, gate = threading.Event(), threading.Event()

    async def main():
        batcher = MicroBatcher(FakeEngine().run_jobs)
        batcher.start()
        engine = FakeEngine()
        slow_engine = type("SlowEngine", (), {"create": lambda self, o: SlowRecognizer(o.sample_rate, entered, gate),
                                              "run_jobs": engine.run_jobs})()
        slow = RecognitionSession("slow", slow_engine, batcher, Metrics(), StreamOptions())
        fast = RecognitionSession("fast", engine, batcher, Metrics(), StreamOptions())
        data = level_audio([7]).tobytes()
        stuck = asyncio.ensure_future(slow.feed(data))
        await asyncio.to_thread(entered.wait, 10)
        answered = await fast.feed(data)
        was_stuck = not stuck.done()
        gate.set()
        await stuck
        await batcher.stop()
        return answered, was_stuck

    answered, was_stuck = asyncio.run(main())
    assert was_stuck and [e.unstable for e in answered if hasattr(e, "unstable")] == [" w7"]


def test_server_lm_built_at_start_and_shared(lm_model, monkeypatch):
    """A checkpoint's LM is loaded once at start-up; `lm: false` sessions share one more search without it."""
    builds, searches = _record_searches(monkeypatch)
    engine = ModelEngine(lm_model, StreamingOptions(window=WINDOW))
    assert len(builds) == 1 and engine.streaming_options.decoder.kind == "beam"
    audio = (0.1 * np.random.default_rng(2).standard_normal(16_000 * 2)).astype(np.float32)
    for lm in (None, True, False, False, None):
        recognizer = engine.create(StreamOptions(lm=lm))
        recognizer.feed(audio)
        recognizer.flush()
    with_lm = [s for s in searches if s._language_model is not None]
    without = [s for s in searches if s._language_model is None]
    assert len(builds) == 2 and with_lm and without
    assert all(s is builds[0] for s in with_lm) and all(s is builds[1] for s in without)
