"""Cached conv features, window jobs, run_jobs batching and the split API."""

import dataclasses

import numpy as np
import pytest
import torch

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.model import load_model
from xlsr_live.model.loader import NORM_EPS
from xlsr_live.model.testing import write_random_checkpoint
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer
from xlsr_live.streaming.windows import FeatureCache, run_jobs

WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)
UNGATED = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW, endpoint=EndpointOptions(enabled=False))


def full_features(model, normalised):
    """Conv features of a whole normalised signal, (T, C)."""
    with torch.inference_mode():
        return model.model.conv_features(torch.from_numpy(normalised)[None])[0].numpy()


def test_feature_cache_equals_whole_utterance(tiny_model, speech_audio):
    """Features computed piecewise (random piece sizes) equal the whole-utterance conv features."""
    audio = tiny_model.preprocessing.normalize(speech_audio[:SAMPLE_RATE * 3])
    cache = FeatureCache(tiny_model)
    rng = np.random.default_rng(0)
    received = 0
    while received < len(audio):
        received = min(len(audio), received + int(rng.integers(1, 9_000)))
        begin = cache.end * cache.hop
        cache.extend(audio[begin:received], begin)
    expected = full_features(tiny_model, audio)
    assert cache.end == len(expected) == tiny_model.config.num_frames(len(audio))
    np.testing.assert_allclose(cache.get(0, cache.end).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_streamed_job_features_equal_whole_utterance(tiny_model, speech_audio):
    """Every window job's cached features equal the matching frames of the whole utterance."""
    audio = speech_audio[:SAMPLE_RATE * 3]
    rec = StreamingRecognizer(tiny_model, UNGATED)
    jobs = []
    for start in range(0, len(audio), 1_234):
        rec.push(audio[start:start + 1_234])
        while (job := rec.next_job()) is not None:
            jobs.append(job)
            rec.complete(job, run_jobs(tiny_model, [job])[0])
    first_window = (WINDOW.chunk_frames + WINDOW.lookahead_frames) * 320
    head = audio[:first_window]
    normalised = (audio - head.mean()) / np.sqrt(head.var() + NORM_EPS)
    expected = full_features(tiny_model, normalised.astype(np.float32))
    assert len(jobs) >= 5
    for index, job in enumerate(jobs):
        first = max(0, index * WINDOW.chunk_frames - WINDOW.left_frames)
        np.testing.assert_allclose(job.features.numpy(), expected[first:first + job.num_frames],
                                   rtol=1e-4, atol=1e-5)


def collect_jobs(model, pieces):
    """One recognizer per audio piece; push it whole and take its first ready job."""
    recs, jobs = [], []
    for audio in pieces:
        rec = StreamingRecognizer(model, UNGATED)
        rec.push(audio)
        recs.append(rec)
        jobs.append(rec.next_job())
    return recs, jobs


def test_run_jobs_batch_equals_individual(tiny_model, speech_audio):
    """Windows of different streams and lengths batched in one pass give each one's own logits."""
    pieces = [speech_audio[8_000:8_000 + n] for n in (12_000, 16_000, 30_000)]
    recs, jobs = collect_jobs(tiny_model, pieces)
    for rec, job in zip(recs[:2], jobs):  # end two streams so that their last chunks are short
        rec.complete(job, run_jobs(tiny_model, [job])[0])
        rec.end()
    jobs = [rec.next_job() or job for rec, job in zip(recs, jobs)]
    lengths = {job.num_frames for job in jobs}
    assert len(lengths) > 1, lengths
    batched = run_jobs(tiny_model, jobs)
    for job, logits in zip(jobs, batched):
        alone = run_jobs(tiny_model, [job])[0]
        assert logits.shape == (job.num_frames, len(tiny_model.vocab))
        np.testing.assert_allclose(logits, alone, rtol=1e-4, atol=1e-4)


def test_split_api_equals_feed(tiny_model, speech_audio):
    """Two streams interleaved through push/next_job/run_jobs/complete/end equal feed/flush."""
    options = StreamingOptions(window=WINDOW)
    audios = [speech_audio, speech_audio[SAMPLE_RATE // 2:]]
    recs = [StreamingRecognizer(tiny_model, options) for _ in audios]
    reference = []
    for audio in audios:
        rec = StreamingRecognizer(tiny_model, options)
        reference.append(rec.feed(audio) + rec.flush())
    got = [[], []]
    block = 5_000
    for start in range(0, len(audios[0]), block):
        for i, rec in enumerate(recs):
            got[i] += rec.push(audios[i][start:start + block]) if start < len(audios[i]) else []
        drain(tiny_model, recs, got)
    for i, rec in enumerate(recs):
        got[i] += rec.end()
    drain(tiny_model, recs, got)
    assert all(rec.done for rec in recs)
    for mine, theirs in zip(got, reference):
        assert_same_events(mine, theirs)


def assert_same_events(mine, theirs):
    """Same events; confidences may differ by float noise of batched matmuls."""
    assert [type(e) for e in mine] == [type(e) for e in theirs]
    for a, b in zip(mine, theirs):
        if hasattr(a, "words"):
            assert [(w.word, w.start, w.end) for w in a.words] == [(w.word, w.start, w.end) for w in b.words]
            assert [w.conf for w in a.words] == pytest.approx([w.conf for w in b.words], abs=1e-5)
            a, b = dataclasses.replace(a, words=()), dataclasses.replace(b, words=())
        assert a == b


def drain(model, recs, got):
    """Batch every ready job of all streams per round until none is ready."""
    while True:
        ready = [(i, job) for i, rec in enumerate(recs) if (job := rec.next_job()) is not None]
        if not ready:
            return
        logits = run_jobs(model, [job for _, job in ready])
        for (i, job), out in zip(ready, logits):
            got[i] += recs[i].complete(job, out)


def test_complete_rejects_foreign_job(tiny_model, speech_audio):
    """complete() with a job that is not this stream's job in flight is a ValueError."""
    recs, jobs = collect_jobs(tiny_model, [speech_audio[8_000:40_000]] * 2)
    logits = run_jobs(tiny_model, jobs)
    with pytest.raises(ValueError):
        recs[0].complete(jobs[1], logits[1])
    with pytest.raises(ValueError):
        recs[0].complete(jobs[0], logits[0][:-1])
    assert recs[0].next_job() is None  # one job in flight per stream


@pytest.fixture(scope="module")
def group_model(tmp_path_factory):
    """A tiny random base-kind (group-norm, post-norm) checkpoint."""
    path = write_random_checkpoint(tmp_path_factory.mktemp("group"), feat_extract_norm="group",
                                   do_stable_layer_norm=False)
    return load_model(path)


def test_group_norm_windows(group_model, speech_audio):
    """Group-norm models recompute conv features per window from audio; batching still works."""
    recs, jobs = collect_jobs(group_model, [speech_audio[8_000:8_000 + n] for n in (16_000, 30_000)])
    assert all(job.audio is not None and job.features is None for job in jobs)
    batched = run_jobs(group_model, jobs)
    for job, logits in zip(jobs, batched):
        assert logits.shape == (job.num_frames, len(group_model.vocab))
        assert np.isfinite(logits).all()
    events = StreamingRecognizer(group_model, UNGATED).feed(speech_audio[:SAMPLE_RATE * 2])
    assert events and events[0].type == "speech_start"


def test_whole_utterance_window_matches_offline(tiny_model, speech_audio):
    """Windows as long as the utterance reproduce the offline (whole-input) greedy result."""
    from xlsr_live.ctc import greedy_decode

    audio = speech_audio[:SAMPLE_RATE * 3]
    options = StreamingOptions(vad=VadOptions(enabled=False), endpoint=EndpointOptions(enabled=False),
                               window=WindowOptions(chunk_ms=400, left_context_ms=10_000, lookahead_ms=10_000))
    rec = StreamingRecognizer(tiny_model, options)
    events = rec.feed(audio) + rec.flush()
    final = events[-1]
    text, words = greedy_decode(tiny_model.logits(audio), tiny_model.vocab)
    assert final.text == text and final.text
    assert [(w.word, w.start, w.end) for w in final.words] == [(w.word, w.start, w.end) for w in words]


def test_shared_decoder_factory(tiny_model, speech_audio):
    """Recognizers can share one DecoderFactory (one beam decoder); mismatched options are refused."""
    from xlsr_live.decoding import DecoderFactory, DecoderOptions

    options = StreamingOptions(window=WINDOW, decoder=DecoderOptions(kind="beam", beam_width=4))
    shared = DecoderFactory(tiny_model.vocab, options.decoder)
    audio = speech_audio[:SAMPLE_RATE * 2]
    results = []
    for _ in range(2):
        rec = StreamingRecognizer(tiny_model, options, decoders=shared)
        results.append(rec.feed(audio) + rec.flush())
    alone = StreamingRecognizer(tiny_model, options)
    assert results[0] == results[1] == alone.feed(audio) + alone.flush()
    with pytest.raises(ValueError, match="decoders"):
        StreamingRecognizer(tiny_model, StreamingOptions(), decoders=shared)


def test_run_jobs_pads_to_frame_buckets_exactly(tiny_model, speech_audio, monkeypatch):
    """Transformer inputs are padded to a multiple of FRAME_BUCKET frames; real frames are unchanged."""
    from xlsr_live.streaming import windows

    recs, jobs = collect_jobs(tiny_model, [speech_audio[8_000:8_000 + 12_000]])
    recs[0].complete(jobs[0], run_jobs(tiny_model, [jobs[0]])[0])
    recs[0].end()
    job = recs[0].next_job()  # the short last window of the utterance
    assert job.features.shape[0] % windows.FRAME_BUCKET != 0, job.features.shape
    shapes, encode = [], tiny_model.model.encode_features
    monkeypatch.setattr(tiny_model.model, "encode_features", lambda x, mask: shapes.append(x.shape) or encode(x, mask))
    bucketed = run_jobs(tiny_model, [job])[0]
    monkeypatch.setattr(windows, "FRAME_BUCKET", 1)
    exact = run_jobs(tiny_model, [job])[0]
    assert shapes[0][1] % 10 == 0 and shapes[0][1] > shapes[1][1] == job.features.shape[0]
    np.testing.assert_allclose(bucketed, exact, rtol=1e-4, atol=1e-4)
