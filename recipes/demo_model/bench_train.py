"""Training throughput of the demo recipe, audio-seconds per second, on fixed batches.

  flock /work/bench.lock python bench_train.py --pause-training --json /work/demo-runs/bench_train.json

Builds --batches batches once (the recipe's example builder, full curriculum: up to 12 s crops,
full augmentation, --batch-s padded seconds each), then for each setting starts from the packaged
weights, runs 2 warm-up steps and times --steps optimizer steps over the same batches. Settings:
  baseline        the recipe as it was (whole model trained)
  no_dropout      hidden/attention dropout 0 (no random masks; SDPA's fused CPU kernel)
  frozen_encoder  conv feature encoder frozen (warm start: its backward pass is skipped)
  frozen_no_dropout  both
  xlsr_backend    xlsr-live's plain-torch module (xlsr_backend.py: no dropout, no SpecAugment masks)
  xlsr_frozen     that with the conv feature encoder frozen
  xlsr_compile    the plain-torch module under torch.compile (dynamic shapes)
  xlsr_freezeK    the plain-torch module with its first K conv layers frozen (K = 1..5)
  xlsr_freeze4_bf16  xlsr_freeze4 under bf16 autocast
  xlsr_layersK    front end (conv encoder, projection, positional conv) and first K transformer layers frozen
With --pause-training the running train.py (`train.py --run`) is SIGSTOPped for the measurement
and always SIGCONTed afterwards. --repeat N runs N rounds over the settings; prints medians across
rounds and the median per-round ratio to the baseline; JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common as C  # noqa: E402
import examples as EX  # noqa: E402
import train as TR  # noqa: E402

SETTINGS = {"baseline": [], "no_dropout": ["--dropout", "0"], "frozen_encoder": ["--freeze-encoder"],
            "frozen_no_dropout": ["--freeze-encoder", "--dropout", "0"],
            "xlsr_backend": ["--backend", "xlsr"], "xlsr_frozen": ["--backend", "xlsr", "--freeze-encoder"],
            "xlsr_compile": ["--backend", "xlsr", "--compile"],
            **{f"xlsr_freeze{k}": ["--backend", "xlsr", "--freeze-conv-layers", str(k)] for k in (1, 2, 3, 4, 5)},
            "xlsr_freeze4_bf16": ["--backend", "xlsr", "--freeze-conv-layers", "4", "--bf16"],
            **{f"xlsr_layers{k}": ["--backend", "xlsr", "--freeze-layers", str(k)] for k in (0, 1, 2, 3)},
            **{f"xlsr_layers{k}_bf16": ["--backend", "xlsr", "--freeze-layers", str(k), "--bf16"] for k in (0, 1, 2)}}


def fixed_batches(data, n, batch_s, seed=0):
    ds = EX.Batches(os.path.join(data, "train"), seed=seed, batch_s=batch_s, sched=lambda _: (12.0, 1.0, 0.02))
    it = iter(ds)
    return [next(it) for _ in range(n)]


def time_setting(extra, batches, steps, threads, warm=2):
    args = TR.parse_args(["--run", "/tmp/bench_train_run", "--init", os.path.join(HERE, "../../xlsr_live/models/demo"),
                          "--threads", str(threads), "--lr", "1e-4", "--warmup", "1"] + extra)
    tr = TR.Trainer(args, "cpu")
    for xs, am, lab, _ in batches[:warm]:
        tr.train_step(xs, am, lab)
    per_step, audio = [], []
    for i in range(steps):
        xs, am, lab, _ = batches[i % len(batches)]
        t0 = time.perf_counter()
        tr.train_step(xs, am, lab)
        per_step.append(time.perf_counter() - t0)
        audio.append(am.sum().item() / C.SR)
    return {"audio_s_per_s": sum(audio) / sum(per_step),
            "median_audio_s_per_s": statistics.median(a / t for a, t in zip(audio, per_step)),
            "median_step_s": statistics.median(per_step), "steps": steps}


def summarize(rounds, names):
    """Per setting: median audio-s/s over rounds and, with a baseline, the median of per-round ratios."""
    out = {}
    for name in names:
        out[name] = {"audio_s_per_s": statistics.median(r[name]["audio_s_per_s"] for r in rounds),
                     "rounds": len(rounds)}
        if "baseline" in names:
            out[name]["ratio_to_baseline"] = statistics.median(
                r[name]["audio_s_per_s"] / r["baseline"]["audio_s_per_s"] for r in rounds)
    return out


def run_rounds(names, batches, args):
    """--repeat rounds over the settings, round-robin, so that a noisy neighbour hits every setting alike."""
    rounds = []
    for r in range(args.repeat):
        rounds.append({})
        for name in names:
            rounds[r][name] = res = time_setting(SETTINGS[name], batches, args.steps, args.threads, args.warm)
            print(f"round {r} {name:18s} {res['audio_s_per_s']:6.2f} audio-s/s (median per step "
                  f"{res['median_audio_s_per_s']:.2f}, {res['median_step_s']:.2f} s/step)", flush=True)
    return rounds


def pause(sig):
    subprocess.run(["pkill", f"-{sig}", "-f", "train.py --run"], check=False)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/demo-data")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch-s", type=float, default=16.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warm", type=int, default=2, help="untimed steps first (compile: every batch shape)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all settings; medians across rounds")
    ap.add_argument("--pause-training", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    random.seed(0); torch.manual_seed(0)
    batches = fixed_batches(args.data, args.batches, args.batch_s)
    names = args.settings.split(",")
    if args.pause_training:
        pause("STOP")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        rounds = run_rounds(names, batches, args)
    finally:
        if args.pause_training:
            pause("CONT")
    res = summarize(rounds, names)
    for name, r in res.items():
        ratio = (f" x{r['ratio_to_baseline']:.2f} vs baseline (median of per-round ratios)"
                 if "ratio_to_baseline" in r else "")
        print(f"{name:18s} median {r['audio_s_per_s']:6.2f} audio-s/s{ratio}")
    if args.json:
        json.dump({"settings": res, "rounds": rounds, "batches": args.batches, "batch_s": args.batch_s,
                   "threads": args.threads, "time": time.strftime("%Y-%m-%d %H:%M:%S")}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
