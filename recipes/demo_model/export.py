"""Export a training checkpoint to the Hugging Face layout shipped in xlsr_live/models/demo/.

  python export.py --ckpt /work/demo-runs/run1/ckpt_last.pt            # -> xlsr_live/models/demo
  python export.py --ckpt ... --out /tmp/demo --no-example

Writes config.json, model.safetensors (float16 storage by default, must be <= 25 MB; config.json keeps
dtype float32, so loaders compute in fp32; --storage float32 keeps full precision), vocab.json,
tokenizer_config.json, special_tokens_map.json (if transformers writes it),
preprocessor_config.json, and example.wav / example.txt: a 16 kHz mono clip
spoken by a HELD-OUT voice (flite slt) of two HELD-OUT sentences (eval split).
Finally reloads the export with from_pretrained and transcribes example.wav.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
from textnorm import normalise, split_of  # noqa: E402
from common import edit_distance  # noqa: E402

MAX_BYTES = 25 * 1000 * 1000
EXAMPLE_SENTENCES = [
    "I respect faith, but doubt is what gives you an education.",
    "In every non trivial program there is at least one bug.",
]
EXAMPLE_VOICE = "slt"  # flite slt: held out of training


def make_example(out_dir):
    parts, labels = [], []
    for s in EXAMPLE_SENTENCES:
        tts, lab = normalise(s)
        assert split_of(lab) == "eval", f"example sentence must be held out: {s}"
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["flite", "-voice", EXAMPLE_VOICE, "-t", tts, "-o", f.name], check=True)
            a, sr = sf.read(f.name, dtype="float32")
        assert sr == C.SR
        parts.append(a)
        labels.append(lab)
    gap = np.zeros(int(0.25 * C.SR), np.float32)
    x = np.concatenate([gap, parts[0], gap, parts[1], gap])
    x = x / np.abs(x).max() * 0.8
    sf.write(os.path.join(out_dir, "example.wav"), x, C.SR, subtype="PCM_16")
    text = " ".join(labels)
    open(os.path.join(out_dir, "example.txt"), "w").write(text + "\n")
    return len(x) / C.SR, text


def record_example(out, model, proc) -> str:
    """The exported weights' greedy transcript of example.wav; written with its CER into STATUS.json
    (when there is one) as `example_greedy`, which tests/test_demo_model.py checks the shipped
    weights against."""
    x, sr = sf.read(os.path.join(out, "example.wav"), dtype="float32")
    inp = proc(x, sampling_rate=sr, return_tensors="pt")
    with torch.inference_mode():
        logits = model(inp.input_values, attention_mask=inp.attention_mask).logits
    hyp = proc.batch_decode(logits.argmax(-1))[0]
    status_path = os.path.join(out, "STATUS.json")
    if os.path.exists(status_path):
        ref = open(os.path.join(out, "example.txt")).read().strip()
        status = json.load(open(status_path))
        status["example_greedy"] = {"hyp": hyp, "cer": round(edit_distance(ref, hyp) / len(ref), 4)}
        with open(status_path, "w") as f:
            json.dump(status, f, indent=1)
            f.write("\n")
    return hyp


def store_half(path: str):
    """Rewrite a safetensors file with its float tensors in float16 (the file's metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, path + ".tmp", metadata=meta)
    shutil.copymode(path, path + ".tmp")
    os.replace(path + ".tmp", path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="/work/demo-runs/run1/ckpt_last.pt")
    ap.add_argument("--out", default=os.path.join(here, "../../xlsr_live/models/demo"))
    ap.add_argument("--no-example", action="store_true")
    ap.add_argument("--storage", choices=("float16", "float32"), default="float16",
                    help="dtype of the stored weights (float16: half the bytes; the snapshots training "
                         "averages are float16 already)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    from transformers import (Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    cfg = C.model_config(**ck.get("config_over", {}))
    cfg.architectures = ["Wav2Vec2ForCTC"]
    model = Wav2Vec2ForCTC(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    if args.storage == "float16":
        store_half(os.path.join(out, "model.safetensors"))

    with tempfile.TemporaryDirectory() as d:
        vf = os.path.join(d, "vocab.json")
        json.dump(C.VOCAB_DICT, open(vf, "w"))
        tok = Wav2Vec2CTCTokenizer(vf, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", word_delimiter_token="|", do_lower_case=True)
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=C.SR, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=True)
    # classic layout (preprocessor_config.json + tokenizer files), readable by transformers 4.x
    # and 5.x; transformers 5's processor.save_pretrained would write processor_config.json instead
    stale = os.path.join(out, "processor_config.json")
    if os.path.exists(stale):
        os.remove(stale)
    fe.save_pretrained(out)
    tok.save_pretrained(out)
    for f in ("preprocessor_config.json", "tokenizer_config.json", "vocab.json"):
        assert os.path.exists(os.path.join(out, f)), f

    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    info = {"checkpoint": os.path.abspath(args.ckpt), "step": ck["step"],
            "params": sum(p.numel() for p in model.parameters()),
            "model.safetensors bytes": size}
    if not args.no_example:
        dur, text = make_example(out)
        info["example"] = {"seconds": round(dur, 2), "text": text, "voice": "flite:slt (held out)"}

    # round trip through the public loaders
    m2 = Wav2Vec2ForCTC.from_pretrained(out).eval()
    proc = Wav2Vec2Processor.from_pretrained(out)
    if os.path.exists(os.path.join(out, "example.wav")):
        hyp = record_example(out, m2, proc)
        if not args.no_example:
            info["example"]["greedy_hyp"] = hyp
    print(json.dumps(info, indent=1))
    print("files:", {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))})
    assert size <= MAX_BYTES, f"model.safetensors is {size} bytes > {MAX_BYTES}"


if __name__ == "__main__":
    main()
