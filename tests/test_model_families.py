"""Every CTC family against transformers on random weights of unusual sizes, offline and streaming."""

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from xlsr_live.constants import SAMPLE_RATE  # noqa: E402
from xlsr_live.model import load_model  # noqa: E402
from xlsr_live.model.testing import ENGLISH_VOCAB  # noqa: E402
from xlsr_live.ctc import greedy_decode  # noqa: E402
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions  # noqa: E402
from xlsr_live.streaming.recognizer import StreamingRecognizer  # noqa: E402
from xlsr_live.streaming.windows import run_jobs  # noqa: E402

TOLERANCE = 1e-4  # fp32 logits, max abs difference
# max abs logit difference to transformers fp32 over these cases (logits span about +-2), x2 margin (docs/models.md)
BF16_TOLERANCE = 0.12  # measured 0.024-0.060
INT8_TOLERANCE = 0.16  # measured 0.053-0.082
SIZES = dict(conv_dim=(16, 20, 24, 28), conv_kernel=(11, 5, 3, 3), conv_stride=(5, 4, 4, 4), num_hidden_layers=2)
ODD = dict(SIZES, hidden_size=36, num_attention_heads=3, intermediate_size=52, num_conv_pos_embeddings=7,
           num_conv_pos_embedding_groups=3)
EVEN_KERNEL = dict(SIZES, hidden_size=44, num_attention_heads=4, intermediate_size=60, num_conv_pos_embeddings=8,
                   num_conv_pos_embedding_groups=4)
CASES = {  # name: (transformers config class, model class, fields)
    "wav2vec2-group": ("Wav2Vec2Config", "Wav2Vec2ForCTC",
                       dict(ODD, feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)),
    "hubert-group": ("HubertConfig", "HubertForCTC",
                     dict(ODD, feat_extract_norm="group", do_stable_layer_norm=False, feat_proj_layer_norm=False)),
    "hubert-layer-stable": ("HubertConfig", "HubertForCTC",
                            dict(EVEN_KERNEL, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioForCTC",
                       dict(ODD, num_conv_pos_embeddings=3, conv_pos_kernel_size=5)),
    "data2vec-audio-even": ("Data2VecAudioConfig", "Data2VecAudioForCTC",
                            dict(EVEN_KERNEL, num_conv_pos_embeddings=2, conv_pos_kernel_size=4)),
    "wavlm-group": ("WavLMConfig", "WavLMForCTC", dict(ODD, feat_extract_norm="group", do_stable_layer_norm=False,
                                                       num_buckets=20, max_bucket_distance=40)),
    "wavlm-layer-stable": ("WavLMConfig", "WavLMForCTC",
                           dict(EVEN_KERNEL, feat_extract_norm="layer", do_stable_layer_norm=True,
                                num_buckets=24, max_bucket_distance=60)),
}
SHORT = WindowOptions(chunk_ms=400, left_context_ms=10_000, lookahead_ms=10_000)  # one window per utterance
UNGATED = dict(vad=VadOptions(enabled=False), endpoint=EndpointOptions(enabled=False))


def save_reference(directory, config_class, model_class, fields):
    """A transformers CTC model with every weight perturbed, saved with save_pretrained plus vocab files."""
    torch.manual_seed(0)
    config = getattr(transformers, config_class)(vocab_size=len(ENGLISH_VOCAB), **fields)
    reference = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for parameter in reference.parameters():  # layer norms, gates and biases away from their init
            parameter.add_(0.1 * torch.randn_like(parameter))
    reference.save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ENGLISH_VOCAB)}))
    (directory / "preprocessor_config.json").write_text(json.dumps(
        {"sampling_rate": 16000, "do_normalize": True, "return_attention_mask": getattr(config, "feat_extract_norm", "layer") == "layer"}))
    return reference


@pytest.fixture(scope="module", params=sorted(CASES))
def family(request, tmp_path_factory):
    """(name, transformers model, checkpoint directory, xlsr-live model) per family case."""
    directory = tmp_path_factory.mktemp(request.param)
    reference = save_reference(directory, *CASES[request.param])
    return request.param, reference, directory, load_model(directory)


def audio(seconds: float, seed: int = 1) -> np.ndarray:
    """Random audio, well inside [-1, 1] (the engine clips)."""
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)


def reference_logits(reference, wave: np.ndarray) -> torch.Tensor:
    """transformers' logits (T, V) for one input."""
    with torch.inference_mode():
        return reference(torch.from_numpy(wave)[None]).logits[0]


def test_family_loads_as_its_own_config(family):
    """The checkpoint's model_type picks the family's blocks and tensor prefix."""
    _, reference, _, ours = family
    assert ours.config.model_type == reference.config.model_type
    assert ours.config.family.architecture == type(reference).__name__
    assert ours.config.family.prefix == reference.base_model_prefix


def test_logits_and_greedy_text_match(family):
    """fp32 logits within 1e-4 of transformers on 1.5 s; the greedy frame labels (hence texts) are equal."""
    _, reference, _, ours = family
    wave = audio(1.5)
    expected = reference_logits(reference, wave)
    with torch.inference_mode():
        got = ours.model(torch.from_numpy(wave)[None])[0]
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < TOLERANCE
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    assert greedy_decode(got.numpy(), ours.vocab)[0] == greedy_decode(expected.numpy(), ours.vocab)[0]


def test_padded_batch_rows_equal_alone(family):
    """Where the checkpoint takes masks, a padded batch row equals transformers on that row alone."""
    _, reference, _, ours = family
    if not ours.uses_attention_mask:
        return
    long, short = audio(1.5, seed=2), audio(1.0, seed=3)
    wave = torch.zeros(2, len(long))
    wave[0], wave[1, :len(short)] = torch.from_numpy(long), torch.from_numpy(short)
    mask = wave.new_zeros(2, len(long), dtype=torch.bool)
    mask[0], mask[1, :len(short)] = True, True
    with torch.inference_mode():
        got = ours.model(wave, mask)
    frames = ours.config.num_frames(len(short))
    assert (got[0] - reference_logits(reference, long)).abs().max().item() < TOLERANCE
    assert (got[1, :frames] - reference_logits(reference, short)).abs().max().item() < TOLERANCE


@pytest.mark.parametrize("dtype, tolerance", [("bf16", BF16_TOLERANCE), ("int8", INT8_TOLERANCE)])
def test_reduced_precision_close(family, dtype, tolerance):
    """bf16 weights and dynamic int8 stay within the documented logit tolerance of transformers fp32."""
    name, reference, directory, ours = family
    wave = audio(1.5)
    got = load_model(directory, dtype=dtype).logits(wave)  # normalises as the checkpoint asks
    difference = np.abs(got - reference_logits(reference, ours.preprocessing.normalize(wave)).numpy()).max()
    print(f"{name} {dtype}: max abs logit difference {difference:.4f}")
    assert difference < tolerance


def test_streaming_final_equals_offline_for_short_utterance(family):
    """An utterance shorter than one window: the streaming final is the offline greedy transcript."""
    _, _, _, ours = family
    wave = audio(1.2, seed=4)
    rec = StreamingRecognizer(ours, StreamingOptions(window=SHORT, **UNGATED))
    final = (rec.feed(wave) + rec.flush())[-1]
    text, _ = greedy_decode(ours.logits(wave), ours.vocab)
    assert final.type == "final" and final.text == text and text


def test_streaming_windows_batch_equals_alone(family):
    """Windows of two streams batched in one forward pass equal each run alone (recompute and kv_cache)."""
    _, _, _, ours = family
    contexts = ["recompute"] + (["kv_cache"] if ours.config.feat_extract_norm == "layer" else [])
    for context in contexts:
        window = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200, context=context)
        jobs = []
        for seed, seconds in ((5, 2.2), (6, 1.4)):
            rec = StreamingRecognizer(ours, StreamingOptions(window=window, **UNGATED))
            rec.push(audio(seconds, seed))
            rec.end()
            first = rec.next_job()
            rec.complete(first, run_jobs(ours, [first])[0])  # a second window has cached context
            jobs.append(rec.next_job())
        batched = run_jobs(ours, jobs)
        for job, logits in zip(jobs, batched):
            np.testing.assert_allclose(logits, run_jobs(ours, [job])[0], rtol=1e-4, atol=1e-4)


def feed_in_blocks(model, options, wave, block=None):
    """Events of one stream fed whole (block None) or in blocks of `block` samples, then flushed."""
    rec = StreamingRecognizer(model, options)
    step = block or len(wave)
    events = [event for start in range(0, len(wave), step) for event in rec.feed(wave[start:start + step])]
    return events + rec.flush()


def check_split_invariant_and_stable(model, context: str) -> None:
    """Any split of 2.6 s gives the same events, and stable text is never revised (one context mode)."""
    wave = audio(2.6, seed=7)
    window = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200, context=context)
    options = StreamingOptions(window=window, **UNGATED)
    reference = feed_in_blocks(model, options, wave)
    assert feed_in_blocks(model, options, wave, 1_234) == reference
    assert feed_in_blocks(model, options, wave, 7_000) == reference
    stables = [event.stable for event in reference if event.type == "partial"]
    final = reference[-1]
    assert final.type == "final" and stables and stables[-1], "random weights should emit text"
    for earlier, later in zip(stables, stables[1:] + [final.text]):
        assert later.startswith(earlier)


def test_streaming_split_invariant_and_stable_never_revised(family):
    """Per context mode: any split gives the same events, and stable text is never revised."""
    _, _, _, ours = family
    for context in ["recompute"] + (["kv_cache"] if ours.config.feat_extract_norm == "layer" else []):
        check_split_invariant_and_stable(ours, context)
