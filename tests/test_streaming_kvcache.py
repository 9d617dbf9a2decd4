"""kv_cache window context: cached left keys/values, batching, bounds; fused QKV projection."""

import copy
import logging

import numpy as np
import pytest
import torch

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.model.encoder import StreamCache
from xlsr_live.streaming.kvcache import KeyValueCache
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer
from xlsr_live.streaming.windows import run_jobs
from test_streaming_windows import assert_same_events, drain, group_model  # noqa: F401 (fixture)

KV = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200, context="kv_cache")
RECOMPUTE = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)


def ungated(window):
    """Options without VAD or endpointing: the whole input is one utterance."""
    return StreamingOptions(vad=VadOptions(enabled=False), window=window, endpoint=EndpointOptions(enabled=False))


def committed_logits(model, audio, window):
    """Run one ungated stream; per window (job, the committed rows of its logits)."""
    rec = StreamingRecognizer(model, ungated(window))
    rec.push(audio)
    rec.end()
    out = []
    while (job := rec.next_job()) is not None:
        logits = run_jobs(model, [job])[0]
        out.append((job, logits[job.commit_start:job.commit_end]))
        rec.complete(job, logits)
    return out


def test_context_option_validated():
    """An unknown context mode is a ValueError naming it."""
    with pytest.raises(ValueError, match="'bogus'"):
        WindowOptions(context="bogus")


def test_group_norm_model_rejected(group_model):
    """kv_cache needs cached conv features, so group-norm models refuse it."""
    with pytest.raises(ValueError, match="kv_cache"):
        StreamingRecognizer(group_model, ungated(KV))


def test_first_window_equals_recompute(tiny_model, speech_audio):
    """With nothing cached yet, the first window's logits equal the exact recompute window's."""
    audio = speech_audio[:SAMPLE_RATE * 3]
    (job_kv, kv), = committed_logits(tiny_model, audio, KV)[:1]
    (job_rc, rc), = committed_logits(tiny_model, audio, RECOMPUTE)[:1]
    assert job_kv.memory is None and job_kv.left_features.shape[0] == 0
    np.testing.assert_allclose(kv, rc, rtol=1e-5, atol=1e-5)


def test_cache_shapes_and_bound(tiny_model, speech_audio):
    """Each window holds only chunk + lookahead frames and at most left_context of cached K/V."""
    config = tiny_model.config
    windows = committed_logits(tiny_model, speech_audio, KV)
    assert len(windows) > KV.left_frames // KV.chunk_frames + 2
    pos_left = config.num_conv_pos_embeddings // 2
    for index, (job, _) in enumerate(windows):
        assert job.num_frames <= KV.chunk_frames + KV.lookahead_frames
        assert job.left_features.shape[0] == min(index * KV.chunk_frames, pos_left, KV.left_frames)
        if index == 0:
            continue
        assert len(job.memory) == config.num_hidden_layers
        heads = config.num_attention_heads
        expected = (heads, min(index * KV.chunk_frames, KV.left_frames), config.hidden_size // heads)
        assert all(k.shape == v.shape == expected for k, v in job.memory)


def test_close_to_recompute(tiny_model, speech_audio):
    """The approximation stays close to exact recompute of the same left context (tiny model)."""
    kv = np.concatenate([rows for _, rows in committed_logits(tiny_model, speech_audio, KV)])
    exact = np.concatenate([rows for _, rows in committed_logits(tiny_model, speech_audio, RECOMPUTE)])
    assert kv.shape == exact.shape
    assert (kv.argmax(-1) == exact.argmax(-1)).mean() > 0.9
    assert np.abs(kv - exact).max() < 0.2 * np.abs(exact).max()


@pytest.mark.parametrize("block", [1_234, 7_000])
def test_split_invariance(tiny_model, speech_audio, block):
    """kv_cache events do not depend on how the audio was split into feed() calls."""
    options = StreamingOptions(window=KV)
    whole = StreamingRecognizer(tiny_model, options)
    reference = whole.feed(speech_audio) + whole.flush()
    rec = StreamingRecognizer(tiny_model, options)
    events = []
    for start in range(0, len(speech_audio), block):
        events += rec.feed(speech_audio[start:start + block])
    events += rec.flush()
    assert len(reference) > 2
    assert events == reference


def test_batched_streams_equal_feed(tiny_model, speech_audio):
    """Streams with different cache lengths batched through run_jobs equal feed/flush each."""
    options = StreamingOptions(window=KV)
    audios = [speech_audio, speech_audio[SAMPLE_RATE // 2:], speech_audio[SAMPLE_RATE:]]
    reference = []
    for audio in audios:
        rec = StreamingRecognizer(tiny_model, options)
        reference.append(rec.feed(audio) + rec.flush())
    recs = [StreamingRecognizer(tiny_model, options) for _ in audios]
    got = [[] for _ in audios]
    for start in range(0, len(audios[0]), 3_000):
        for i, rec in enumerate(recs):
            got[i] += rec.push(audios[i][start:start + 3_000]) if start < len(audios[i]) else []
        drain(tiny_model, recs, got)
    for i, rec in enumerate(recs):
        got[i] += rec.end()
    drain(tiny_model, recs, got)
    for mine, theirs in zip(got, reference):
        assert_same_events(mine, theirs)


def test_batch_logits_and_memory_equal_individual(tiny_model, speech_audio):
    """One padded pass over kv and recompute windows of different lengths = each run alone."""
    recs, jobs = [], []
    for window, offset in ((KV, 0), (KV, 20_000), (RECOMPUTE, 0)):
        rec = StreamingRecognizer(tiny_model, ungated(window))
        rec.push(speech_audio[:offset + 30_000])
        for _ in range(offset // 6_400 + 1):  # advance so that the cache lengths differ
            job = rec.next_job()
            rec.complete(job, run_jobs(tiny_model, [job])[0])
        recs.append(rec)
        jobs.append(rec.next_job())
    assert len({0 if j.memory is None else j.memory[0][0].shape[1] for j in jobs[:2]}) == 2
    batched = run_jobs(tiny_model, jobs)
    batched_memory = [job.new_memory for job in jobs]
    for job, logits, memory in zip(jobs, batched, batched_memory):
        alone = run_jobs(tiny_model, [job])[0]
        np.testing.assert_allclose(logits, alone, rtol=1e-4, atol=1e-4)
        if job.cached:
            for (k1, v1), (k2, v2) in zip(memory, job.new_memory):
                np.testing.assert_allclose(k1.numpy(), k2.numpy(), rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(v1.numpy(), v2.numpy(), rtol=1e-4, atol=1e-4)


def test_missing_memory_clears_cache(tiny_model, speech_audio, caplog):
    """Logits that did not come from run_jobs: a warning, and the next window has no cached context."""
    rec = StreamingRecognizer(tiny_model, ungated(KV))
    rec.push(speech_audio[:SAMPLE_RATE * 3])
    job = rec.next_job()
    logits = run_jobs(tiny_model, [job])[0]
    job.new_memory = None
    with caplog.at_level(logging.WARNING):
        rec.complete(job, logits)
    assert "no keys/values" in caplog.text
    assert rec.next_job().memory is None


def test_state_bounded(tiny_model):
    """Per-stream state stops growing on a long utterance (cache trimmed to the left context)."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SAMPLE_RATE * 20)).astype(np.float32)
    rec = StreamingRecognizer(tiny_model, ungated(KV))
    sizes = []
    for start in range(0, audio.size, SAMPLE_RATE):
        rec.feed(audio[start:start + SAMPLE_RATE])
        sizes.append(rec.state_bytes())
    kv = rec._utterances[0]._kv
    assert kv.frames == KV.left_frames
    assert max(sizes[5:]) == sizes[-1]


def test_key_value_cache_keeps_last_frames():
    """append keeps the newest max_frames per layer, oldest first."""
    cache = KeyValueCache(5, storage_dtype=None)
    for start in (0, 3, 6):
        frames = torch.arange(start, start + 3, dtype=torch.float32)[None, :, None]  # (h=1, 3, d=1)
        cache.append([(frames, -frames)])
    keys, values = cache.memory()[0]
    assert keys.flatten().tolist() == [4, 5, 6, 7, 8]
    assert values.flatten().tolist() == [-4, -5, -6, -7, -8]
    assert cache.nbytes == 2 * 5 * 4


def test_key_value_cache_stores_half_precision_and_returns_compute_dtype():
    """By default keys/values are kept in float16 (half the bytes) and come back as float32."""
    cache = KeyValueCache(4)
    frames = torch.linspace(-3, 3, 8, dtype=torch.float32).reshape(2, 4, 1)  # (h=2, 4, d=1)
    cache.append([(frames, 2 * frames)])
    keys, values = cache.memory()[0]
    assert keys.dtype == values.dtype == torch.float32
    torch.testing.assert_close(keys, frames, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(values, 2 * frames, rtol=1e-3, atol=1e-3)
    assert cache.nbytes == 2 * 8 * 2


def test_fused_qkv_is_exact(tiny_model):
    """Fusing q/k/v into one linear layer leaves the logits unchanged."""
    fused = copy.deepcopy(tiny_model.model)
    fused.fuse_qkv()
    features = torch.randn(2, 60, tiny_model.config.conv_dim[-1])
    mask = torch.arange(60)[None, :] < torch.tensor([[60], [41]])
    with torch.inference_mode():
        expected = tiny_model.model.encode_features(features, mask)
        got = fused.encode_features(features, mask)
    assert fused.wav2vec2.encoder.layers[0].attention.qkv_proj is not None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_encode_cached_without_memory_equals_encode_features(tiny_model):
    """No cache and no left frames: the cached encoder is the plain encoder."""
    features = torch.randn(1, 40, tiny_model.config.conv_dim[-1])
    cache = StreamCache()
    with torch.inference_mode():
        expected = tiny_model.model.encode_features(features)
        got = tiny_model.model.encode_features(features, cache=cache)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert len(cache.new) == tiny_model.config.num_hidden_layers and cache.new[0][0].shape[2] == 40


@pytest.mark.parametrize("left", [0, 3, 8, 20])
def test_positional_conv_new_frames_only(tiny_model, left):
    """With left context frames the positional conv computes exactly the new frames' rows of the full conv."""
    conv = tiny_model.model.wav2vec2.encoder.pos_conv_embed
    hidden = torch.randn(2, left + 30, tiny_model.config.hidden_size)
    with torch.inference_mode():
        expected = conv(hidden)[:, left:]
        got = conv(hidden, left=left)
    if left >= tiny_model.config.num_conv_pos_embeddings // 2 or left == 0:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    else:  # fewer left frames than the conv reaches: they count as zeros, as at a window start
        padded = torch.cat([torch.zeros(2, 8 - left, hidden.shape[2]), hidden], dim=1)
        with torch.inference_mode():
            torch.testing.assert_close(got, conv(padded)[:, 8:], rtol=1e-5, atol=1e-5)


def test_cached_windows_padded_to_frame_buckets_exactly(tiny_model, speech_audio, monkeypatch):
    """kv_cache inputs (left frames, new frames, cached keys/values) are bucketed; real rows unchanged."""
    from xlsr_live.streaming import kvcache

    windows = committed_logits(tiny_model, speech_audio[:SAMPLE_RATE * 3], KV)
    job = next(job for job, _ in windows[2:] if job.features.shape[0] % 10)  # odd lengths: a short last window
    shapes, encode = [], tiny_model.model.encode_features

    def spy(features, mask=None, cache=None):
        shapes.append((features.shape[1], cache.left, cache.past_frames))
        return encode(features, mask, cache)

    monkeypatch.setattr(tiny_model.model, "encode_features", spy)
    bucketed = run_jobs(tiny_model, [job])[0]
    monkeypatch.setattr(kvcache, "FRAME_BUCKET", 1)
    exact = run_jobs(tiny_model, [job])[0]
    (total, left, past), unpadded = shapes
    assert left % 10 == 0 and (total - left) % 10 == 0 and past % 10 == 0
    assert unpadded == (job.left_features.shape[0] + job.features.shape[0], job.left_features.shape[0],
                        job.memory[0][0].shape[1])
    assert total > unpadded[0]
    np.testing.assert_allclose(bucketed, exact, rtol=1e-4, atol=1e-4)


def test_jobs_carry_the_cache_as_stored(tiny_model, speech_audio):
    """A waiting kv_cache job holds the cached keys/values in their float16 storage, not a float32 copy."""
    windows = committed_logits(tiny_model, speech_audio, KV)
    memories = [job.memory for job, _ in windows if job.memory is not None]
    assert memories and all(k.dtype == v.dtype == torch.float16 for memory in memories for k, v in memory)

