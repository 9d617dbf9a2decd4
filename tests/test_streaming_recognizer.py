"""StreamingRecognizer: split invariance, stable text, inputs, sample rates, gating."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlsr_live.audio import resample
from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.streaming.events import Final, Partial, SpeechEnd, SpeechStart
from xlsr_live.streaming.options import StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer

SMALL = StreamingOptions(window=WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200))


def run_all(rec, audio, sizes=None, sample_rate=None):
    """Feed `audio` in pieces of `sizes` (cycled; whole if None) then flush; all events."""
    events = []
    if sizes is None:
        events += rec.feed(audio, sample_rate)
    else:
        pos, i = 0, 0
        while pos < len(audio):
            size = sizes[i % len(sizes)]
            events += rec.feed(audio[pos:pos + size], sample_rate)
            pos, i = pos + size, i + 1
    return events + rec.flush()


@pytest.fixture(scope="module")
def reference_events(wordy_model, speech_audio):
    """Events of the speech audio fed in one piece with small windows (a model that emits words)."""
    return run_all(StreamingRecognizer(wordy_model, SMALL), speech_audio)


def test_reference_has_utterances(reference_events):
    """Two espeak sentences give two utterances with partials and finals in order."""
    kinds = [type(e) for e in reference_events]
    assert kinds.count(SpeechStart) == kinds.count(SpeechEnd) == kinds.count(Final) == 2
    assert kinds.count(Partial) >= 2
    assert kinds[0] is SpeechStart and kinds[-1] is Final


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=1, max_value=12_000), min_size=1, max_size=6))
def test_split_invariance(wordy_model, speech_audio, reference_events, sizes):
    """Any split of the audio into feed() calls yields exactly the same events."""
    assert run_all(StreamingRecognizer(wordy_model, SMALL), speech_audio, sizes) == reference_events


def test_stable_never_revised(reference_events):
    """Each partial's stable text is a prefix of every later stable and of the utterance's final."""
    stables = []
    for event in reference_events:
        if isinstance(event, Partial):
            assert not event.stable.endswith(" ")
            for earlier in stables:
                assert event.stable.startswith(earlier)
            stables.append(event.stable)
        elif isinstance(event, Final):
            assert stables, "an utterance of speech had no partial"
            for earlier in stables:
                assert event.text.startswith(earlier)
            stables = []
    committed = {e.stable for e in reference_events if isinstance(e, Partial)}
    assert len({s for s in committed if " " in s}) >= 2, f"too little stable text to test: {committed}"


def test_final_words_in_stream_time(reference_events, speech_audio):
    """Final words lie inside their utterance, in absolute stream time, with confidences in [0, 1]."""
    finals = [e for e in reference_events if isinstance(e, Final)]
    assert finals[1].start > finals[0].end
    assert all(len(final.words) >= 2 for final in finals), finals
    for final in finals:
        assert " ".join(w.word for w in final.words) == final.text
        for word in final.words:
            assert final.start <= word.start < word.end <= final.end + 1e-9
            assert 0.0 <= word.conf <= 1.0
    assert finals[-1].end <= len(speech_audio) / SAMPLE_RATE


def test_int16_equals_float32(tiny_model, speech_audio):
    """int16 input gives the same events as the same samples as float32."""
    pcm = np.round(speech_audio * 20_000).astype(np.int16)
    as_float = pcm.astype(np.float32) / 32_768.0
    from_int = run_all(StreamingRecognizer(tiny_model, SMALL), pcm, [3_000])
    from_float = run_all(StreamingRecognizer(tiny_model, SMALL), as_float, [3_000])
    assert from_int == from_float
    assert any(isinstance(e, Final) for e in from_int)


def test_8khz_input(tiny_model, speech_audio):
    """8 kHz input is resampled: same utterance structure and times as at 16 kHz, split invariant."""
    low = resample(speech_audio, SAMPLE_RATE, 8_000)
    whole = run_all(StreamingRecognizer(tiny_model, SMALL, sample_rate=8_000), low)
    pieces = run_all(StreamingRecognizer(tiny_model, SMALL, sample_rate=8_000), low, [700, 1_331])
    assert whole == pieces
    starts_8k = [e.time for e in whole if isinstance(e, SpeechStart)]
    starts_16k = [e.time for e in run_all(StreamingRecognizer(tiny_model, SMALL), speech_audio)
                  if isinstance(e, SpeechStart)]
    assert len(starts_8k) == len(starts_16k) == 2
    assert np.allclose(starts_8k, starts_16k, atol=0.1)


def test_sample_rate_change_rejected(tiny_model, speech_audio):
    """A sample rate other than the declared one is a ValueError; reset(sample_rate=) allows it."""
    rec = StreamingRecognizer(tiny_model, SMALL, sample_rate=16_000)
    rec.feed(speech_audio[:1_000], sample_rate=16_000)
    with pytest.raises(ValueError, match="8000"):
        rec.feed(speech_audio[:1_000], sample_rate=8_000)
    rec.reset(sample_rate=8_000)
    assert rec.feed(np.zeros(800, np.float32), sample_rate=8_000) == []


def test_single_sample_feeds(tiny_model, speech_audio):
    """Feeding one sample at a time equals feeding everything at once."""
    audio = speech_audio[4_000:4_000 + SAMPLE_RATE * 3 // 2]
    whole = run_all(StreamingRecognizer(tiny_model, SMALL), audio)
    rec = StreamingRecognizer(tiny_model, SMALL)
    single = [e for sample in audio for e in rec.feed(sample[None])] + rec.flush()
    assert single == whole
    assert any(isinstance(e, Final) for e in whole)


def test_silence_never_runs_the_model(tiny_model, monkeypatch):
    """Silence and low noise produce no events and no model call."""
    calls = []
    for name in ("conv_features", "encode_features", "forward"):
        original = getattr(tiny_model.model, name)
        monkeypatch.setattr(tiny_model.model, name,
                            lambda *a, _o=original, **k: calls.append(1) or _o(*a, **k))
    rng = np.random.default_rng(1)
    quiet = (1e-4 * rng.standard_normal(SAMPLE_RATE * 5)).astype(np.float32)
    rec = StreamingRecognizer(tiny_model, SMALL)
    assert run_all(rec, quiet, [4_000]) == []
    assert calls == []


def test_speech_runs_the_model(tiny_model, speech_audio):
    """Speech does reach the model (the gate is not simply closed)."""
    rec = StreamingRecognizer(tiny_model, SMALL)
    events = rec.feed(speech_audio)
    assert any(isinstance(e, Partial) for e in events)


def test_feed_after_flush_needs_reset(tiny_model, speech_audio):
    """After flush the stream is done; feeding again requires reset()."""
    rec = StreamingRecognizer(tiny_model, SMALL)
    run_all(rec, speech_audio[:8_000])
    assert rec.done
    with pytest.raises(RuntimeError):
        rec.feed(speech_audio[:100])
    rec.reset()
    assert not rec.done


def test_reset_restarts_stream_time(tiny_model, speech_audio):
    """After reset a used recognizer gives the events of a fresh one (times from 0, fresh VAD)."""
    audio = speech_audio[:SAMPLE_RATE * 3]
    fresh = run_all(StreamingRecognizer(tiny_model, SMALL), audio)
    rec = StreamingRecognizer(tiny_model, SMALL)
    run_all(rec, audio)
    rec.reset()
    assert run_all(rec, audio, [2_345]) == fresh
    rec.reset()
    rec.feed(audio[: SAMPLE_RATE * 2])  # reset in the middle of a stream
    rec.reset()
    assert run_all(rec, audio, [4_000]) == fresh


def test_vad_disabled_one_utterance(tiny_model, speech_audio):
    """With the VAD off everything is one utterance starting at 0 and ending at end of stream."""
    options = StreamingOptions(vad=VadOptions(enabled=False), window=SMALL.window,
                               endpoint=SMALL.endpoint.__class__(enabled=False))
    events = run_all(StreamingRecognizer(tiny_model, options), speech_audio[:SAMPLE_RATE * 2])
    starts = [e for e in events if isinstance(e, SpeechStart)]
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert [s.time for s in starts] == [0.0]
    assert [e.reason for e in ends] == ["end_of_stream"]
    assert ends[0].time == pytest.approx(2.0)
