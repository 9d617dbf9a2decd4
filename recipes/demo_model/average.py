"""Average the weights of several checkpoints: snapshots of one run, or runs from one start (uniform mean, fp32).

  python average.py /work/demo-runs/run9/snaps/s00*.pt --out /work/demo-runs/run9_avg.pt

Inputs are train.py checkpoints or half-precision weight files (`--best-weights`, `--last-weights`,
snapshots): anything with a "model" state dict in transformers' names; or an exported model folder
(model.safetensors, step from its STATUS.json), so that runs fine-tuned from the packaged model can be
averaged with it (a "model soup"; its steps count per run, so "step" then only orders the inputs).
The output holds "model", "step" (the newest input's), "config_over", "averaged" (the inputs' steps)
and "sources" (their paths), which evaluate.py and export.py read like a checkpoint. Integer tensors
(none in this model) are taken from the newest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def load(path: str) -> dict:
    """A checkpoint dict ("model", "step", "config_over") from a .pt file or an exported model folder."""
    if not os.path.isdir(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    from safetensors.torch import load_file

    status = os.path.join(path, "STATUS.json")
    step = 0
    if os.path.exists(status):
        with open(status, encoding="utf-8") as f:
            step = int(json.load(f).get("training_step", 0))
    return {"model": load_file(os.path.join(path, "model.safetensors")), "step": step,
            "config_over": {"num_hidden_layers": C.init_depth(path)}}


def average(paths: list[str]) -> dict:
    """The mean of the inputs' float tensors; ValueError if their names or shapes differ."""
    if not paths:
        raise ValueError("no checkpoints to average")
    loaded = sorted(((load(p), p) for p in paths), key=lambda pair: pair[0]["step"])
    cks = [ck for ck, _ in loaded]
    first = cks[0]["model"]
    total = {k: v.float().clone() if v.is_floating_point() else v for k, v in first.items()}
    for ck, path in loaded[1:]:
        state = ck["model"]
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise ValueError(f"{path}: names or shapes differ from the first checkpoint's")
        for k, v in state.items():
            total[k] = total[k] + v.float() if v.is_floating_point() else v
    model = {k: v / len(cks) if v.is_floating_point() else v for k, v in total.items()}
    newest = cks[-1]
    return {"model": model, "step": newest["step"], "config_over": newest.get("config_over", {}),
            "args": newest.get("args"), "averaged": [int(c["step"]) for c in cks], "sources": [p for _, p in loaded]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = average(args.ckpts)
    torch.save(out, args.out + ".tmp")
    os.replace(args.out + ".tmp", args.out)
    print(f"{args.out}: mean of steps {out['averaged']}")


if __name__ == "__main__":
    main()
