"""Logits of xlsr-live's runtime against transformers' Wav2Vec2ForCTC on the same checkpoint."""

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from xlsr_live.model import load_model  # noqa: E402
from xlsr_live.model.testing import ENGLISH_VOCAB, XLSR_53  # noqa: E402

TOLERANCE = 1e-4
THREE_SECONDS = 48_000

XLSR_CONFIG = dict(XLSR_53, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                   conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
BASE_CONFIG = dict(conv_dim=(512,) * 7, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                   intermediate_size=3072, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                   feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)


def _save_reference(directory, fields, attention_mask):
    """Random transformers model saved with save_pretrained plus tokenizer files."""
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(vocab_size=len(ENGLISH_VOCAB), **fields)
    reference = transformers.Wav2Vec2ForCTC(config).eval()
    reference.save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ENGLISH_VOCAB)}))
    (directory / "preprocessor_config.json").write_text(json.dumps(
        {"sampling_rate": 16000, "do_normalize": True, "return_attention_mask": attention_mask}))
    return reference


@pytest.fixture(scope="module", params=["xlsr53", "base"])
def pair(request, tmp_path_factory):
    """(transformers model, xlsr-live model, kind) for each reference configuration."""
    directory = tmp_path_factory.mktemp(request.param)
    fields, mask = (XLSR_CONFIG, True) if request.param == "xlsr53" else (BASE_CONFIG, False)
    reference = _save_reference(directory, fields, mask)
    yield reference, load_model(directory), request.param
    del reference


def test_logits_match_on_three_seconds(pair):
    """fp32 logits agree within 1e-4 max abs difference on 3 s of audio."""
    reference, ours, _ = pair
    wave = torch.from_numpy(np.random.default_rng(1).standard_normal((1, THREE_SECONDS)).astype(np.float32))
    with torch.inference_mode():
        expected = reference(wave).logits
        got = ours.model(wave)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < TOLERANCE


def test_padded_batch_matches(pair):
    """A padded batch of two lengths matches where the configuration supports attention masks."""
    reference, ours, kind = pair
    if kind != "xlsr53":
        assert not ours.uses_attention_mask  # base models are fed zero padding, no mask
        return
    assert ours.uses_attention_mask
    rng = np.random.default_rng(2)
    wave = torch.from_numpy(rng.standard_normal((2, THREE_SECONDS)).astype(np.float32))
    wave[1, 30_000:] = 0.0
    mask = torch.ones(2, THREE_SECONDS, dtype=torch.long)
    mask[1, 30_000:] = 0
    with torch.inference_mode():
        expected = reference(wave, attention_mask=mask).logits
        got = ours.model(wave, mask.bool())
    frames = ours.model.frame_mask(mask.bool())
    assert frames[1].sum() == ours.config.num_frames(30_000)
    assert (got - expected)[frames].abs().max().item() < TOLERANCE
