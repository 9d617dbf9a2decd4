"""One stream of simulated audio fed to the engine as fast as possible; resident memory per minute.

    python benchmarks/soak_memory.py [--model demo] [--minutes 60] [--warmup-minutes 5]

The audio is espeak-ng sentences separated by 0.3-2 s of silence (or, without espeak-ng, noise
bursts with gaps), looped for `--minutes` of stream time and fed in 100 ms blocks to one
`StreamingRecognizer`. RSS (from /proc/self/statm) is sampled after every simulated minute.
Growth = last sample minus the sample at the end of warm-up. `--model tiny` uses a random tiny
checkpoint (a smoke run; the figure that counts is with the trained model). Writes
benchmarks/results/soak_memory.json.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import _common
from _common import BLOCK, loop_audio, release_free_memory, rss_bytes

RESULTS = _common.RESULTS
RATE = _common.SAMPLE_RATE


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    return rss_bytes() / 2**20


def sample(minute: int, finals: int, started: float) -> dict:
    """RSS as the process holds it, then after gc + malloc_trim (allocator slack handed back), and the
    number of live Python objects: growth in `rss_trimmed_mb` or `objects` is a leak, growth in
    `rss_mb` alone is allocator fragmentation."""
    raw = rss_mb()
    release_free_memory()
    point = {"minute": minute, "rss_mb": round(raw, 2), "rss_trimmed_mb": round(rss_mb(), 2),
             "objects": len(gc.get_objects()), "wall_s": round(time.perf_counter() - started, 1), "finals": finals}
    print(f"minute {minute:4d}  rss {point['rss_mb']:8.1f} MiB  trimmed {point['rss_trimmed_mb']:8.1f} MiB  "
          f"objects {point['objects']:8d}  finals {finals:6d}  wall {point['wall_s']:7.1f} s", flush=True)
    return point


def soak(model, minutes: int, clip: np.ndarray) -> dict:
    """Feed `minutes` of looped audio; RSS after every minute, event counts, wall time."""
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    recognizer = StreamingRecognizer(model)
    finals, partials, position, curve = 0, 0, 0, []
    started = time.perf_counter()
    minute = 60 * RATE
    for index in range(minutes * minute // BLOCK):
        block = np.take(clip, np.arange(position, position + BLOCK), mode="wrap")
        position = (position + BLOCK) % clip.size
        for event in recognizer.feed(block):
            finals += event.type == "final"
            partials += event.type == "partial"
        if (index + 1) * BLOCK % minute == 0:
            curve.append(sample((index + 1) * BLOCK // minute, finals, started))
    finals += sum(e.type == "final" for e in recognizer.flush())
    return {"curve": curve, "finals": finals, "partials": partials,
            "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--minutes", type=int, default=60, help="simulated minutes of audio")
    parser.add_argument("--warmup-minutes", type=int, default=5, help="minutes before the baseline sample")
    parser.add_argument("--limit-mb", type=float, default=10.0, help="allowed growth after warm-up")
    parser.add_argument("--out", default=str(RESULTS / "soak_memory.json"))
    args = parser.parse_args()
    if not 0 < args.warmup_minutes < args.minutes:
        raise ValueError(f"--warmup-minutes {args.warmup_minutes} must be in 1..{args.minutes - 1}")
    from xlsr_live.model import load_model

    model = load_model(_common.model_path(args.model))
    result = soak(model, args.minutes, loop_audio())
    curve = result["curve"]
    warm = curve[args.warmup_minutes - 1]
    baseline = warm["rss_mb"]
    tail = curve[args.warmup_minutes - 1:]
    growth = round(curve[-1]["rss_mb"] - baseline, 2)
    peak_growth = round(max(c["rss_mb"] for c in tail) - baseline, 2)
    summary = {"model": args.model, "minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
               "baseline_rss_mb": baseline, "final_rss_mb": curve[-1]["rss_mb"], "growth_mb": growth,
               "peak_growth_mb": peak_growth, "limit_mb": args.limit_mb, "pass": peak_growth <= args.limit_mb,
               "trimmed_growth_mb": round(curve[-1]["rss_trimmed_mb"] - warm["rss_trimmed_mb"], 2),
               "object_growth": curve[-1]["objects"] - warm["objects"],
               "finals": result["finals"], "partials": result["partials"], "wall_s": result["wall_s"],
               "real_time_factor": round(result["wall_s"] / (60 * args.minutes), 4)}
    print("\n| minutes | warm-up | baseline MiB | final MiB | growth MiB | peak growth MiB | trimmed growth MiB "
          "| object growth | finals | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.minutes} | {args.warmup_minutes} | {baseline} | {curve[-1]['rss_mb']} | {growth} | "
          f"{peak_growth} | {summary['trimmed_growth_mb']} | {summary['object_growth']} | {result['finals']} | "
          f"{result['wall_s']} |")
    print("PASS" if summary["pass"] else f"FAIL: growth above {args.limit_mb} MiB")
    _common.write_json(args.out, dict(summary, curve=curve))


if __name__ == "__main__":
    main()
