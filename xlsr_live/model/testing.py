"""Tiny random-weight checkpoints in Hugging Face layout, for tests and speed benchmarks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from .config import ModelConfig
from .encoder import CTCModel

ENGLISH_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
TINY = dict(conv_dim=(32,) * 7, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
XLSR_53 = dict(conv_dim=(512,) * 7, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
               intermediate_size=4096, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)


def write_random_checkpoint(directory: str | Path, seed: int = 0, **overrides) -> Path:
    """Save a random-weight wav2vec2 CTC model (XLSR kind unless overridden) with vocab files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fields = {"vocab_size": len(ENGLISH_VOCAB), "feat_extract_norm": "layer", "do_stable_layer_norm": True}
    fields.update(TINY)
    fields.update(overrides)
    config = ModelConfig(**fields)
    torch.manual_seed(seed)
    model = CTCModel(config)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    raw = dataclasses.asdict(config)
    raw.update(model_type="wav2vec2", architectures=["Wav2Vec2ForCTC"], feat_extract_activation="gelu",
               hidden_act="gelu", num_feat_extract_layers=len(config.conv_dim))
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ENGLISH_VOCAB)}))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "word_delimiter_token": "|", "do_lower_case": True, "tokenizer_class": "Wav2Vec2CTCTokenizer"}))
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
        "padding_value": 0.0, "do_normalize": True,
        "return_attention_mask": config.feat_extract_norm == "layer"}))
    return directory
