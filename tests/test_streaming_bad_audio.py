"""Bad audio through the engine: beyond full scale, DC offset, ten minutes without a pause."""

import warnings

import numpy as np
import pytest

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.streaming.events import Final, SpeechEnd, SpeechStart
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer

SMALL = StreamingOptions(window=WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200))


def run_all(rec, audio, block=1600):
    """Feed in blocks, then flush; all events."""
    events = [e for start in range(0, len(audio), block) for e in rec.feed(audio[start:start + block])]
    return events + rec.flush()


def test_audio_beyond_full_scale_is_clipped_not_nan(tiny_model, speech_audio):
    """Float audio far beyond +-1 (up to 1e30) gives the events of the clipped audio and no NaN warning."""
    loud = speech_audio * np.float32(1e30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or invalid-value RuntimeWarning fails the test
        events = run_all(StreamingRecognizer(tiny_model, SMALL), loud)
    clipped = run_all(StreamingRecognizer(tiny_model, SMALL), np.clip(loud, -1, 1))
    assert events == clipped
    finals = [e for e in events if isinstance(e, Final)]
    assert finals and all(np.isfinite([w.conf for w in f.words]).all() for f in finals)


def test_int16_clipping_is_recognised_like_any_audio(tiny_model, speech_audio):
    """Hard-clipped int16 speech (x20 gain) still yields bracketed utterances at the speech."""
    clean = [e.time for e in run_all(StreamingRecognizer(tiny_model, SMALL), speech_audio)
             if isinstance(e, SpeechStart)]
    clipped = np.clip(speech_audio * 20 * 32768, -32768, 32767).astype(np.int16)
    starts = [e.time for e in run_all(StreamingRecognizer(tiny_model, SMALL), clipped) if isinstance(e, SpeechStart)]
    assert len(starts) == len(clean) and np.allclose(starts, clean, atol=0.1)


def test_dc_offset_keeps_the_speech_utterances(tiny_model, speech_audio):
    """A DC offset (0.3 full scale) keeps every speech utterance; its onset may add one spurious one at 0 s."""
    clean = [e.time for e in run_all(StreamingRecognizer(tiny_model, SMALL), speech_audio)
             if isinstance(e, SpeechStart)]
    events = run_all(StreamingRecognizer(tiny_model, SMALL), speech_audio + np.float32(0.3))
    starts = [e.time for e in events if isinstance(e, SpeechStart)]
    if len(starts) == len(clean) + 1:  # the step from nothing to the offset at stream start (documented)
        assert starts[0] == 0.0
        starts = starts[1:]
    assert len(starts) == len(clean) and np.allclose(starts, clean, atol=0.15)
    assert len([e for e in events if isinstance(e, Final)]) == len([e for e in events if isinstance(e, SpeechStart)])


def text_logits(vocab, job):
    """Logits that read 'a' in every frame: text without blanks, so no endpoint ever fires."""
    logits = np.zeros((job.num_frames, len(vocab)), dtype=np.float32)
    logits[:, vocab.labels.index("a")] = 10.0
    return logits


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    """A random checkpoint with 4-channel convolutions: the conv features of 10 minutes stay cheap."""
    from xlsr_live.model import load_model
    from xlsr_live.model.testing import write_random_checkpoint

    return load_model(write_random_checkpoint(tmp_path_factory.mktemp("micro"), conv_dim=(4,) * 7))


def test_ten_minutes_without_a_pause_are_cut_and_state_stays_bounded(micro_model):
    """10 min of loud noise with no pause: forced cuts every <= 30 s, nothing lost, state bounded."""
    options = StreamingOptions(endpoint=EndpointOptions(enabled=True))
    rec = StreamingRecognizer(micro_model, options)
    rng = np.random.default_rng(0)
    events, peak_utterances, peak_samples = [], 0, 0
    for _ in range(600):  # one second per push; scripted logits stand in for the transformer
        events += rec.push((0.3 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32))
        while (job := rec.next_job()) is not None:
            events += rec.complete(job, text_logits(micro_model.vocab, job))
        peak_utterances = max(peak_utterances, len(rec._utterances))
        peak_samples = max(peak_samples, sum(len(u.audio) for u in rec._utterances))
    events += rec.end()
    while (job := rec.next_job()) is not None:
        events += rec.complete(job, text_logits(micro_model.vocab, job))
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    finals = [e for e in events if isinstance(e, Final)]
    assert rec.done and len(finals) == len(ends) >= 20
    assert [e.reason for e in ends[:-1]] == ["max_length"] * (len(ends) - 1)
    assert all(f.end - f.start <= options.vad.max_utterance_ms / 1000 + 1e-9 for f in finals)
    assert finals[0].start <= 0.1 and finals[-1].end == pytest.approx(600.0, abs=0.05)
    assert all(a.end == b.start for a, b in zip(finals, finals[1:]))  # contiguous: no audio dropped
    assert peak_utterances <= 2 and peak_samples <= (options.vad.max_utterance_ms + 2_000) * 16
