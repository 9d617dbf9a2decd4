"""Wav2Vec2-Conformer and Wav2Vec2-BERT: parity with transformers, dtypes, streaming finals."""

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from xlsr_live.model import load_model  # noqa: E402
from xlsr_live.model.features import FilterBank  # noqa: E402
from xlsr_live.model.testing import ENGLISH_VOCAB  # noqa: E402
from xlsr_live.offline import OfflineOptions, iter_window_logits, transcribe_array  # noqa: E402
from xlsr_live.streaming import StreamingRecognizer  # noqa: E402
from xlsr_live.ctc import greedy_decode  # noqa: E402
from xlsr_live.streaming.options import (EndpointOptions, StreamingOptions, VadOptions,  # noqa: E402
                                         WindowOptions)
from xlsr_live.streaming.windows import run_jobs  # noqa: E402

from test_model_families import UNGATED, check_split_invariant_and_stable  # noqa: E402
from test_model_families import audio as random_audio  # noqa: E402

TOLERANCE = 1e-4
# measured on these random configurations, the 2 s below, relative RMS error of the logits
# (rms(low - fp32) / rms(fp32)): int8 0.025-0.051, bf16 0.011-0.115 (docs/models.md)
INT8_TOLERANCE = 0.1
BF16_TOLERANCE = 0.15
SMALL = dict(hidden_size=36, num_attention_heads=3, num_hidden_layers=2, intermediate_size=52)
CONV_FRONT = dict(conv_dim=(24, 20, 20, 28), conv_kernel=(10, 3, 3, 3), conv_stride=(5, 4, 4, 4),
                  num_conv_pos_embeddings=6, num_conv_pos_embedding_groups=2)
KINDS = {
    "conformer_relative": ("conformer", dict(SMALL, **CONV_FRONT, position_embeddings_type="relative",
                                             conv_depthwise_kernel_size=7, hidden_act="swish",
                                             feat_extract_norm="layer", conv_bias=True)),
    "conformer_rotary": ("conformer", dict(SMALL, **CONV_FRONT, position_embeddings_type="rotary",
                                           conv_depthwise_kernel_size=3, feat_extract_norm="group")),
    "bert": ("bert", dict(SMALL, conv_depthwise_kernel_size=5, left_max_position_embeddings=7,
                          right_max_position_embeddings=3)),
    "bert_rotary": ("bert", dict(SMALL, conv_depthwise_kernel_size=9, position_embeddings_type="rotary")),
    "bert_relative": ("bert", dict(SMALL, conv_depthwise_kernel_size=3, position_embeddings_type="relative",
                                   layer_norm_eps=1e-3)),
    "bert_adapter": ("bert", dict(SMALL, conv_depthwise_kernel_size=5, add_adapter=True, output_hidden_size=24,
                                  use_intermediate_ffn_before_adapter=True)),
    "bert_adapter_odd": ("bert", dict(SMALL, conv_depthwise_kernel_size=3, add_adapter=True, output_hidden_size=24,
                                      num_adapter_layers=2, adapter_kernel_size=5, adapter_stride=3)),
}


def _perturb(model):
    """Move norms, BatchNorm statistics and position biases off their initial values."""
    generator = torch.Generator().manual_seed(3)

    def noise(t, scale):
        return scale * torch.randn(t.shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                module.weight.add_(noise(module.weight, 0.2))
                module.bias.add_(noise(module.bias, 0.2))
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.add_(noise(module.running_mean, 0.3))
                module.running_var.mul_(1 + torch.rand(module.running_var.shape, generator=generator))
        for name, parameter in model.named_parameters():
            if "pos_bias" in name:
                parameter.add_(noise(parameter, 0.5))


def _save_reference(directory, family, fields):
    """A random transformers model saved with save_pretrained, its feature extractor and vocab."""
    torch.manual_seed(0)
    if family == "conformer":
        config = transformers.Wav2Vec2ConformerConfig(vocab_size=len(ENGLISH_VOCAB), **fields)
        reference = transformers.Wav2Vec2ConformerForCTC(config).eval()
        extractor = transformers.Wav2Vec2FeatureExtractor(
            do_normalize=True, return_attention_mask=fields["feat_extract_norm"] == "layer")
    else:
        config = transformers.Wav2Vec2BertConfig(vocab_size=len(ENGLISH_VOCAB), **fields)
        reference = transformers.Wav2Vec2BertForCTC(config).eval()
        extractor = transformers.SeamlessM4TFeatureExtractor()
    _perturb(reference)
    reference.save_pretrained(directory)
    extractor.save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ENGLISH_VOCAB)}))
    return reference, extractor


@pytest.fixture(scope="module", params=sorted(KINDS))
def pair(request, tmp_path_factory):
    """(transformers model, its feature extractor, our LoadedModel, kind) per configuration."""
    family, fields = KINDS[request.param]
    directory = tmp_path_factory.mktemp(request.param)
    reference, extractor = _save_reference(directory, family, fields)
    return reference, extractor, load_model(directory), request.param


def _reference_logits(reference, extractor, audio):
    inputs = extractor(audio, sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        return reference(**inputs).logits[0].numpy()


@pytest.fixture(scope="module")
def utterance(speech_audio):
    """1.2 s of espeak speech: shorter than one default streaming window (1.4 s)."""
    return speech_audio[8_000:8_000 + 19_200]


def test_logits_match_transformers(pair, speech_audio):
    """fp32 logits of save_pretrained checkpoints loaded by load_model agree within 1e-4."""
    reference, extractor, ours, _ = pair
    for audio in (speech_audio[:37_123], speech_audio[5_000:5_000 + 16_000 + 160]):  # odd / even 10 ms frames
        expected = _reference_logits(reference, extractor, audio)
        got = ours.logits(audio)
        assert got.shape == expected.shape
        print(f"{pair[3]} {len(audio)} samples: max abs logit difference {np.abs(got - expected).max():.2e}")
        assert np.abs(got - expected).max() < TOLERANCE


def test_greedy_transcripts_equal(pair, speech_audio):
    """Greedy CTC transcripts of our logits and transformers' are the same text."""
    reference, extractor, ours, _ = pair
    audio = speech_audio[:40_000]
    expected, _ = greedy_decode(_reference_logits(reference, extractor, audio), ours.vocab)
    got, _ = greedy_decode(ours.logits(audio), ours.vocab)
    assert got == expected and got


def test_padded_batch_rows_equal_single_inputs(pair, speech_audio):
    """A padded, masked batch gives each row the logits of that input alone (exact batching)."""
    _, _, ours, kind = pair
    if kind.startswith("conformer") and ours.config.feat_extract_norm == "group":
        pytest.skip("group-norm front ends take zero padding without a mask (as transformers)")
    if kind.startswith("bert_adapter"):
        pytest.skip("transformers' adapter convs see padded frames; rows are exact only alone")
    lengths = (30_000, 21_337)
    rows = [ours.preprocessing.normalize(speech_audio[:n]) for n in lengths]
    batch = torch.zeros((2, lengths[0]))
    mask = torch.zeros((2, lengths[0]), dtype=torch.bool)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = torch.from_numpy(row)
        mask[i, :len(row)] = True
    with torch.inference_mode():
        logits = ours.model(batch, mask)
        frames = ours.model.frame_mask(mask)
    for i, n in enumerate(lengths):
        alone = ours.logits(speech_audio[:n])
        real = int(frames[i].sum())
        assert real >= alone.shape[0] - 1  # w2v-BERT: an odd 10 ms frame count leaves one masked frame
        assert np.abs(logits[i, :alone.shape[0]].numpy() - alone)[:real].max() < TOLERANCE


@pytest.mark.parametrize("dtype,tolerance", [("int8", INT8_TOLERANCE), ("bf16", BF16_TOLERANCE)])
def test_low_precision_within_tolerance(pair, speech_audio, dtype, tolerance):
    """int8 (dynamic, CPU) and bf16 logits stay within the documented relative RMS error of fp32."""
    _, _, ours, _ = pair
    audio = speech_audio[:32_000]
    low = load_model(ours.source, dtype=dtype)
    exact, approx = ours.logits(audio), low.logits(audio)
    assert approx.shape == exact.shape
    error = np.sqrt(((approx - exact) ** 2).mean() / (exact ** 2).mean())
    agree = (approx.argmax(-1) == exact.argmax(-1)).mean()
    print(f"{pair[3]} {dtype}: relative RMS logit error {error:.4f}, greedy labels kept {agree:.1%}")
    assert error < tolerance


def test_streaming_final_equals_offline_for_short_utterance(pair, utterance):
    """The engine's final for an utterance shorter than one window is the offline transcript (text and
    word times)."""
    _, _, ours, _ = pair
    recognizer = StreamingRecognizer(ours, StreamingOptions(**UNGATED))
    events = recognizer.feed(utterance) + recognizer.flush()
    finals = [event for event in events if event.type == "final"]
    offline = transcribe_array(ours, utterance)
    assert offline.text
    assert [final.text for final in finals] == [offline.text]
    def timed(words):
        return [(word.word, word.start, word.end) for word in words]

    assert timed(finals[0].words) == timed(offline.words)  # times too, at the model's frame rate


def test_kv_cache_refused(pair):
    """context='kv_cache' is refused: relative positions are recomputed per window instead."""
    _, _, ours, _ = pair
    with pytest.raises(ValueError, match="recompute"):
        StreamingRecognizer(ours, StreamingOptions(window=WindowOptions(context="kv_cache")))


@pytest.mark.parametrize("lengths", [(16_000,), (16_160, 9_999)])
def test_filter_bank_matches_seamless_extractor(speech_audio, lengths):
    """Our torch filter banks equal SeamlessM4TFeatureExtractor's (features and mask) to 1e-4."""
    extractor = transformers.SeamlessM4TFeatureExtractor()
    clips = [speech_audio[4_000:4_000 + n] for n in lengths]
    expected = extractor(clips, sampling_rate=16_000, return_tensors="pt")
    batch = torch.zeros((len(clips), max(lengths)))
    for i, clip in enumerate(clips):
        batch[i, :len(clip)] = torch.from_numpy(clip)
    features, mask = FilterBank()(batch, torch.tensor(lengths))
    assert features.shape == expected["input_features"].shape
    assert torch.equal(mask, expected["attention_mask"].bool())
    assert (features - expected["input_features"]).abs().max() < TOLERANCE


def test_streaming_windows_batch_equals_alone(pair):
    """Windows of two streams (different lengths: padding) batched in one pass equal each run alone."""
    _, _, ours, kind = pair
    if ours.config.feat_extract_norm == "group":
        pytest.skip("group norm: zero-padded audio changes the GroupNorm statistics (as in transformers)")
    window = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)
    jobs = []
    for seed, seconds, later in ((5, 1.0, False), (6, 2.2, True)):
        recognizer = StreamingRecognizer(ours, StreamingOptions(window=window, **UNGATED))
        recognizer.push(random_audio(seconds, seed))
        recognizer.end()
        job = recognizer.next_job()
        if later:  # a window with left context
            recognizer.complete(job, run_jobs(ours, [job])[0])
            job = recognizer.next_job() or job
        jobs.append(job)
    assert jobs[0].num_frames < jobs[1].num_frames
    # with adapter layers the strided convs see the padding (as in transformers) and the adapter's
    # attention spreads it a little: the short window's frames next to the padding differ, the rest
    # stay within 1e-3
    adapter = ours.config.add_adapter
    edge = ours.config.num_adapter_layers * (ours.config.adapter_kernel_size // 2 + 1) if adapter else 0
    tolerance = 1e-3 if adapter else 1e-4
    for job, logits in zip(jobs, run_jobs(ours, jobs)):
        alone = run_jobs(ours, [job])[0]
        keep = len(alone) - edge if job is jobs[0] else len(alone)
        np.testing.assert_allclose(logits[:keep], alone[:keep], rtol=tolerance, atol=tolerance)


def test_streaming_split_invariant_and_stable_never_revised(pair):
    """Any split of the input gives the same events, and stable text is never revised (recompute)."""
    check_split_invariant_and_stable(pair[2], "recompute")


def test_offline_windows_use_the_model_frame_rate(pair, speech_audio):
    """Offline windows stitch contiguously and word times are in seconds at the model's own frame
    rate (w2v-BERT adapters: 40 ms or more per frame)."""
    _, _, ours, _ = pair
    options = OfflineOptions(chunk_ms=1_800, left_stride_ms=360, right_stride_ms=360)  # 180 ms multiples
    wave = speech_audio[:80_000]
    kept = np.concatenate(list(iter_window_logits(ours, [wave], options)))
    assert kept.shape == ours.logits(wave).shape
    words = transcribe_array(ours, wave, options).words
    assert words and 0.8 * len(wave) / 16_000 < words[-1].end <= len(wave) / 16_000
