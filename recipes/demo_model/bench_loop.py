"""Training throughput of the whole loop (train.py with its data workers), audio-seconds per second.

  flock /work/bench.lock python bench_loop.py --init /work/demo-runs/run10_avg_s10.pt \\
      --settings "base=" "fiw=--features-in-workers" --steps 250 --repeat 3 --json out.json \\
      -- --backend xlsr --rooms --vtlp-max 1.25 --codecs 0.1 --freeze-layers 0 --bf16

bench_train.py times optimizer steps on batches made beforehand; this runs the real train.py
(fresh run directory, --max-steps, no dev pass, no checkpoints until the end) so that what the
data workers cost on the same cores counts too. Each setting is the common train.py arguments
(after `--`) plus its own (VAR=VALUE entries set its environment); settings run round-robin --repeat times. Figure per run: the median of
the logged audio-s/s after --skip steps (start-up, the room bank being filled). Prints per-setting
medians over rounds and the median per-round ratio to the first setting; JSON with --json.
Pause a running training first (it shares the cores): /work/logs/bench.sh does.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def one_run(common: list[str], extra: list[str], steps: int, skip: int) -> float:
    """Median logged audio-s/s of one train.py run of `steps` steps, after the first `skip`.
    Entries of `extra` that look like VAR=VALUE (e.g. GOMP_SPINCOUNT=10000) go to its environment."""
    env = dict(os.environ)
    env.update(e.split("=", 1) for e in extra if "=" in e and not e.startswith("-"))
    flags = [e for e in extra if "=" not in e or e.startswith("-")]
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, os.path.join(HERE, "train.py"), "--run", run_dir, "--max-steps", str(steps),
               "--dev-every", "1000000000", "--ckpt-min", "100000", *common, *flags]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    rates = [r["audio_s_per_s"] for r in map(json.loads, (line for line in out.splitlines() if line.startswith("{")))
             if "audio_s_per_s" in r and r["step"] > skip]
    if not rates:
        raise ValueError(f"no throughput lines after step {skip} in {steps} steps")
    return statistics.median(rates)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    common = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True, help="starting weights (a checkpoint or an exported folder)")
    ap.add_argument("--settings", nargs="+", required=True, help="NAME=EXTRA ARGS (space-separated), first = baseline")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--skip", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    settings = [s.partition("=") for s in args.settings]
    rounds = []
    for k in range(args.repeat):
        rates = {name: one_run(["--init", args.init, *common], extra.split(), args.steps, args.skip)
                 for name, _, extra in settings}
        print(f"round {k + 1}: " + "  ".join(f"{n} {r:.1f}" for n, r in rates.items()), flush=True)
        rounds.append(rates)
    base = settings[0][0]
    summary = {}
    for name, _, extra in settings:
        ratios = [r[name] / r[base] for r in rounds]
        summary[name] = {"extra": extra, "audio_s_per_s": [r[name] for r in rounds],
                         "median": statistics.median(r[name] for r in rounds), "median_ratio": statistics.median(ratios)}
        print(f"{name:12s} median {summary[name]['median']:6.1f} audio-s/s  x{summary[name]['median_ratio']:.2f} "
              f"(rounds {' / '.join(f'{x:.2f}' for x in ratios)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"common": common, "init": args.init, "steps": args.steps, "skip": args.skip,
                       "settings": summary}, f, indent=1)


if __name__ == "__main__":
    main()
