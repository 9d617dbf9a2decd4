"""Utterance segmentation: VAD gate, forced cut at the quietest point, model endpointing, options."""

import numpy as np
import pytest

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.decoding import DecoderOptions
from xlsr_live.streaming.events import Final, Partial, SpeechEnd, SpeechStart
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer
from xlsr_live.streaming.vad import VadGate

WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)


def noise_with_gaps(seconds, gaps, seed=0):
    """White noise with near-silent gaps [(start_s, end_s), ...]."""
    rng = np.random.default_rng(seed)
    audio = (0.2 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    for start, end in gaps:
        audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] *= 1e-3
    return audio


def run_all(rec, audio, block=None):
    """Feed in blocks (whole if None), then flush."""
    block = block or len(audio)
    events = [e for start in range(0, len(audio), block) for e in rec.feed(audio[start:start + block])]
    return events + rec.flush()


def test_forced_cut_at_quietest_point(tiny_model):
    """Utterances longer than max_utterance_ms are cut inside the quiet gap of the search stretch."""
    options = StreamingOptions(vad=VadOptions(enabled=False, max_utterance_ms=2_000, cut_search_ms=700),
                               window=WINDOW, endpoint=EndpointOptions(enabled=False))
    audio = noise_with_gaps(5.0, [(1.62, 1.70), (3.30, 3.38)])
    events = run_all(StreamingRecognizer(tiny_model, options), audio)
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    starts = [e.time for e in events if isinstance(e, SpeechStart)]
    assert [e.reason for e in ends] == ["max_length", "max_length", "end_of_stream"]
    assert 1.62 <= ends[0].time <= 1.70 - 0.02
    assert 3.30 <= ends[1].time <= 3.38 - 0.02
    assert starts == [0.0, ends[0].time, ends[1].time]
    assert len([e for e in events if isinstance(e, Final)]) == 3
    assert run_all(StreamingRecognizer(tiny_model, options), audio, block=777) == events


def test_forced_cut_split_invariant_near_window_edge(tiny_model):
    """A cut where a window's lookahead would reach gives the same events however audio is split."""
    options = StreamingOptions(vad=VadOptions(enabled=False, max_utterance_ms=2_000, cut_search_ms=700),
                               window=WINDOW, endpoint=EndpointOptions(enabled=False))
    audio = noise_with_gaps(3.0, [(1.32, 1.36)])  # cut at 1.32 s: inside chunk 2's lookahead (1.2-1.4 s)
    whole = run_all(StreamingRecognizer(tiny_model, options), audio)
    ends = [e for e in whole if isinstance(e, SpeechEnd)]
    assert ends[0].reason == "max_length" and 1.32 <= ends[0].time < 1.36
    for block in (320, 4_000):
        assert run_all(StreamingRecognizer(tiny_model, options), audio, block=block) == whole


def test_max_length_bounds_every_utterance(tiny_model):
    """No utterance is longer than max_utterance_ms, even without quiet gaps."""
    options = StreamingOptions(vad=VadOptions(enabled=False, max_utterance_ms=1_600, cut_search_ms=400),
                               window=WINDOW, endpoint=EndpointOptions(enabled=False))
    events = run_all(StreamingRecognizer(tiny_model, options), noise_with_gaps(5.0, []), block=5_000)
    finals = [e for e in events if isinstance(e, Final)]
    assert len(finals) >= 3
    assert all(f.end - f.start <= 1.6 + 1e-9 for f in finals)


def scripted_logits(vocab, job, text_chunks):
    """Logits (T, V): the first letter for windows of chunks in `text_chunks`, blank otherwise."""
    utterance, chunk = job.utterance, job.chunk
    logits = np.zeros((job.num_frames, len(vocab)), dtype=np.float32)
    token = vocab.labels.index("a") if (utterance, chunk) in text_chunks else vocab.blank_id
    logits[:, token] = 10.0
    return logits


def run_scripted(model, options, audio, text_chunks):
    """Run a stream through the split API with scripted logits."""
    rec = StreamingRecognizer(model, options)
    events = rec.push(audio) + rec.end()
    while (job := rec.next_job()) is not None:
        events += rec.complete(job, scripted_logits(model.vocab, job, text_chunks))
    assert rec.done
    return events


def test_endpoint_trailing_blanks_after_text(tiny_model):
    """Rule 1: trailing blank frames after text end the utterance; the rest starts a new one."""
    options = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW,
                               endpoint=EndpointOptions(trailing_blank_ms=400, silence_only_ms=0))
    events = run_scripted(tiny_model, options, noise_with_gaps(2.0, []), {(0, 0)})
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    finals = [e for e in events if isinstance(e, Final)]
    assert [(e.reason, e.time) for e in ends] == [("endpoint", 0.8), ("end_of_stream", 2.0)]
    assert [f.text for f in finals] == ["a", ""]
    assert [e.time for e in events if isinstance(e, SpeechStart)] == [0.0, 0.8]
    assert finals[0].words[0].start == 0.0 and finals[0].words[0].end == pytest.approx(0.4)


def test_endpoint_silence_only(tiny_model):
    """Rule 2: blank frames without any text end the utterance after silence_only_ms."""
    options = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW,
                               endpoint=EndpointOptions(trailing_blank_ms=400, silence_only_ms=800))
    events = run_scripted(tiny_model, options, noise_with_gaps(2.0, []), set())
    ends = [(e.reason, e.time) for e in events if isinstance(e, SpeechEnd)]
    assert ends == [("endpoint", 0.8), ("endpoint", 1.6), ("end_of_stream", 2.0)]
    assert all(f.text == "" for f in events if isinstance(f, Final))


def test_endpoint_disabled(tiny_model):
    """With endpointing off, blanks do not end the utterance."""
    options = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW, endpoint=EndpointOptions(enabled=False))
    events = run_scripted(tiny_model, options, noise_with_gaps(2.0, []), {(0, 0)})
    assert [e.reason for e in events if isinstance(e, SpeechEnd)] == ["end_of_stream"]
    assert [type(e) for e in events].count(Partial) == 5


def test_vad_gate_pre_roll_and_hangover(speech_audio):
    """The gate starts before the speech (pre-roll) and ends after the hangover."""
    options = VadOptions(pre_roll_ms=300, hangover_ms=600)
    gate = VadGate(options)
    outputs = gate.process(speech_audio) + gate.flush()
    starts = [o.sample for o in outputs if o.kind == "start"]
    ends = [o.sample for o in outputs if o.kind == "end"]
    assert len(starts) == len(ends) == 2
    first_loud = int(np.argmax(np.abs(speech_audio) > 0.01))
    assert first_loud - (300 + 150 + 30) * 16 <= starts[0] < first_loud
    audio = sum(len(o.audio) for o in outputs if o.kind == "audio")
    assert audio == sum(e - s for s, e in zip(starts, ends))
    assert ends[0] - starts[0] >= 600 * 16


def test_vad_and_utterance_buffers_sized_to_what_they_keep(tiny_model, speech_audio):
    """The VAD history holds twice pre-roll + onset window + a frame, not seconds; an utterance's
    audio buffer starts at its window plan (kv_cache: positional left frames, chunk, lookahead, slack)."""
    options = VadOptions()
    gate = VadGate(options)
    gate.process(np.zeros(5 * SAMPLE_RATE, dtype=np.float32))
    history_ms = options.pre_roll_ms + options.onset_window_ms + options.frame_ms
    assert gate._history.nbytes == 2 * history_ms * 16 * 4
    window = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200, context="kv_cache")
    rec = StreamingRecognizer(tiny_model, StreamingOptions(window=window))
    for start in range(0, 2 * SAMPLE_RATE, SAMPLE_RATE // 10):  # 100 ms blocks, windows run in between
        rec.feed(speech_audio[start:start + SAMPLE_RATE // 10])
    utterance = rec._utterances[0]
    config = tiny_model.config
    frames = min(40, config.positional_left_frames) + 20 + 10 + 50
    assert utterance.audio.nbytes == (frames * config.hop_samples + config.receptive_field_samples) * 4


@pytest.mark.parametrize("factory, match", [
    (lambda: VadOptions(frame_ms=25), "frame_ms=25"),
    (lambda: VadOptions(aggressiveness=4), "aggressiveness=4"),
    (lambda: VadOptions(hangover_ms=610), "hangover_ms=610"),
    (lambda: WindowOptions(chunk_ms=0), "chunk_ms=0"),
    (lambda: WindowOptions(lookahead_ms=310), "lookahead_ms=310"),
    (lambda: DecoderOptions(kind="viterbi"), "viterbi"),
    (lambda: DecoderOptions(beam_width=0), "beam_width=0"),
    (lambda: EndpointOptions(trailing_blank_ms=-20), "trailing_blank_ms=-20"),
    (lambda: StreamingOptions(window=WindowOptions(chunk_ms=40_000)), "chunk_ms=40000"),
])
def test_options_reject_bad_values(factory, match):
    """Options validate on construction and name the bad value."""
    with pytest.raises(ValueError, match=match):
        factory()


def loud_regions(audio, threshold=0.01, gap=SAMPLE_RATE // 2):
    """(start, end) seconds of stretches above threshold, merging pauses shorter than `gap` samples."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return [(s / SAMPLE_RATE, (e + 1) / SAMPLE_RATE) for s, e in zip(starts, ends)]


def test_utterances_bracket_the_speech(tiny_model, speech_audio):
    """Each espeak sentence lies inside one utterance, which ends within hangover + one frame of it."""
    options = StreamingOptions(window=WINDOW, endpoint=EndpointOptions(enabled=False))
    events = run_all(StreamingRecognizer(tiny_model, options), speech_audio, block=1_600)
    starts = [e.time for e in events if isinstance(e, SpeechStart)]
    ends = [e.time for e in events if isinstance(e, SpeechEnd)]
    regions = loud_regions(speech_audio)
    assert len(regions) == len(starts) == len(ends) == 2
    hangover = options.vad.hangover_ms / 1000
    for (speech_start, speech_end), start, end in zip(regions, starts, ends):
        assert start <= speech_start
        assert speech_start - start <= (options.vad.pre_roll_ms + options.vad.onset_window_ms) / 1000 + 0.1
        assert speech_end <= end <= speech_end + hangover + 0.2


def test_empty_and_multichannel_feeds(tiny_model, speech_audio):
    """Empty feeds are no-ops; (n, 2) int16 input is down-mixed like its mono float equivalent."""
    pcm = np.round(speech_audio[:SAMPLE_RATE * 3] * 20_000).astype(np.int16)
    rec = StreamingRecognizer(tiny_model, StreamingOptions(window=WINDOW))
    assert rec.feed(np.zeros(0, np.int16)) == []
    stereo = rec.feed(np.stack([pcm, pcm], axis=1)) + rec.feed(np.zeros(0, np.float32)) + rec.flush()
    rec.reset()
    mono = rec.feed(pcm.astype(np.float32) / 32_768.0) + rec.flush()
    assert stereo == mono and any(isinstance(e, Final) for e in mono)
