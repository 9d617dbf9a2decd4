"""Checkpoint loading: formats, hub resolution, and clear errors for what cannot be loaded."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from xlsr_live.model import (CheckpointError, ModelNotFoundError, UnsupportedModelError, load_model,
                             parse_dtype)
from xlsr_live.model.testing import write_random_checkpoint


@pytest.fixture
def ckpt(tmp_path, tiny_model_dir):
    """A writable copy of the tiny checkpoint."""
    return shutil.copytree(tiny_model_dir, tmp_path / "ckpt")


def _edit_config(directory, **changes):
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def _logits(model):
    wave = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    return model.logits(wave)


def test_pytorch_bin_and_safetensors_agree(ckpt, tiny_model):
    """pytorch_model.bin (weights_only pickle) loads to the same model as safetensors."""
    state = load_file(str(ckpt / "model.safetensors"))
    torch.save(state, ckpt / "pytorch_model.bin")
    (ckpt / "model.safetensors").unlink()
    np.testing.assert_allclose(_logits(load_model(ckpt)), _logits(tiny_model), atol=1e-6)


def test_sharded_safetensors(ckpt, tiny_model):
    """A sharded checkpoint with model.safetensors.index.json loads every shard."""
    state = load_file(str(ckpt / "model.safetensors"))
    keys = sorted(state)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for name, part in halves.items():
        save_file({k: state[k] for k in part}, str(ckpt / name))
        weight_map.update({k: name for k in part})
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    np.testing.assert_allclose(_logits(load_model(ckpt)), _logits(tiny_model), atol=1e-6)


def test_old_weight_norm_names(ckpt, tiny_model):
    """weight_g / weight_v of older checkpoints fold into the same positional conv weight."""
    state = load_file(str(ckpt / "model.safetensors"))
    key = "wav2vec2.encoder.pos_conv_embed.conv.weight"
    weight = state.pop(key)
    g = weight.norm(dim=(0, 1), keepdim=True)
    state[key + "_g"], state[key + "_v"] = g, weight / g * 3.0  # v's scale must not matter
    save_file(state, str(ckpt / "model.safetensors"))
    np.testing.assert_allclose(_logits(load_model(ckpt)), _logits(tiny_model), atol=1e-5)


def test_pickle_with_objects_is_refused(ckpt):
    """A pickle holding more than plain tensors is refused by weights_only loading."""
    (ckpt / "model.safetensors").unlink()
    torch.save({"wav2vec2.x": torch.zeros(1), "evil": np.dtype}, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(ckpt)


def test_missing_weights(ckpt):
    """No weight file at all names what was expected."""
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        load_model(ckpt)


def test_missing_config_and_vocab(ckpt):
    """Missing config.json or vocab.json is named in the error."""
    (ckpt / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="vocab.json"):
        load_model(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(ckpt)


def test_wrong_shape_is_named(ckpt):
    """A tensor whose shape contradicts config.json is named with both shapes."""
    _edit_config(ckpt, intermediate_size=96)
    with pytest.raises(CheckpointError, match=r"intermediate_dense.*shape"):
        load_model(ckpt)


def test_missing_and_unexpected_tensors(ckpt):
    """Dropped and extra tensors are both fatal: never a silent partial load."""
    state = load_file(str(ckpt / "model.safetensors"))
    state.pop("lm_head.bias")
    state["wav2vec2.adapter.weight"] = torch.zeros(2)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing \['lm_head.bias'\].*unexpected"):
        load_model(ckpt)


def test_vocab_mismatch(ckpt):
    """vocab.json that does not match the output layer is refused."""
    vocab = json.loads((ckpt / "vocab.json").read_text())
    vocab["é"] = len(vocab)
    (ckpt / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="vocab.json has 33 tokens.*32"):
        load_model(ckpt)


@pytest.mark.parametrize("changes, found", [
    ({"model_type": "speech_to_text"}, "model_type 'speech_to_text'"),
    ({"model_type": "hubert"}, "no HubertForCTC head"),
    ({"adapter_attn_dim": 16, "do_stable_layer_norm": False}, "MMS language adapters.*pre-norm"),
    ({"feat_extract_norm": "batch"}, "feat_extract_norm 'batch'"),
    ({"architectures": ["Wav2Vec2ForPreTraining"]}, "Wav2Vec2ForCTC"),
])
def test_unsupported_configs(ckpt, changes, found):
    """Unsupported architectures fail with what was found and what is supported."""
    _edit_config(ckpt, **changes)
    with pytest.raises(UnsupportedModelError, match=found):
        load_model(ckpt)


def test_hub_id_offline_not_cached(tmp_path, monkeypatch):
    """Offline and uncached, a hub id gives a clear error telling how to get the model."""
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache.*huggingface-cli download"):
        load_model("facebook/wav2vec2-large-xlsr-53-english-not-cached")


def test_hub_id_from_cache(tmp_path, monkeypatch, tiny_model_dir, tiny_model):
    """A hub id already in the cache loads offline from the cache layout."""
    pytest.importorskip("huggingface_hub")
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    np.testing.assert_allclose(_logits(load_model("org/tiny")), _logits(tiny_model), atol=1e-6)


def test_not_a_path_nor_hub_id():
    """A name that is neither a directory nor a hub id says so."""
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        load_model("./definitely/not/here")


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_close_to_fp32(tiny_model_dir, tiny_model, dtype):
    """bf16 and fp16 models give logits close to fp32."""
    half = load_model(tiny_model_dir, dtype=dtype)
    assert half.dtype == parse_dtype(dtype)
    np.testing.assert_allclose(_logits(half), _logits(tiny_model), atol=0.15)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(tiny_model_dir, monkeypatch, caplog, native):
    """bf16 on a CPU that would emulate it logs a warning naming the faster choice; native bf16 and float32 do not."""
    import xlsr_live.model.loader as loader

    assert isinstance(loader.native_cpu_bf16(), bool)  # the real probe answers on this CPU
    monkeypatch.setattr(loader, "native_cpu_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="xlsr_live.model.loader"):
        load_model(tiny_model_dir, dtype="bf16")
        load_model(tiny_model_dir, dtype="fp32")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == (0 if native else 1)
    assert native or ("emulated" in warnings[0] and "int8" in warnings[0])


def test_int8_close_to_fp32(tiny_model_dir, tiny_model):
    """Dynamic int8 quantization keeps logits close to fp32 and reports itself."""
    quantized = load_model(tiny_model_dir, dtype="int8")
    assert quantized.quantization == "int8" and quantized.dtype == torch.float32
    np.testing.assert_allclose(_logits(quantized), _logits(tiny_model), atol=0.2)


def test_bad_dtype_named():
    """An unknown dtype is named in the error."""
    with pytest.raises(ValueError, match="'int3'"):
        parse_dtype("int3")


def test_group_norm_checkpoint_loads(tmp_path):
    """A base-style (group norm, post-norm) checkpoint loads and runs."""
    model = load_model(write_random_checkpoint(tmp_path, feat_extract_norm="group", do_stable_layer_norm=False,
                                               conv_bias=False))
    assert not model.uses_attention_mask
    assert _logits(model).shape == (49, 32)
