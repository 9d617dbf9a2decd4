"""Offline speed and memory of an XLSR-53-size model: xlsr-live fp32/bf16 vs transformers' pipeline.

Each measurement runs in a fresh subprocess (peak RSS is per process). Prints a table and writes
benchmarks/results/offline_rtf.json.

    python benchmarks/offline_rtf.py [--seconds 60] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

SAMPLE_RATE = _common.SAMPLE_RATE


def make_audio(path: Path, seconds: float) -> None:
    """Speech-like test audio: espeak-ng reading text in a loop over noise (noise alone without it)."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    audio = rng.standard_normal(int(seconds * SAMPLE_RATE)).astype("float32") * 0.05
    speech = _common.espeak("the quick brown fox jumps over the lazy dog. " * int(seconds / 2), "-s", "160")
    if speech is not None:
        speech = speech[: audio.size]
        audio[: speech.size] += speech
    soundfile.write(path, audio, SAMPLE_RATE)


def worker(kind: str, checkpoint: str, audio_path: str, dtype: str) -> dict:
    """Load, transcribe once, report times and peak RSS (runs in its own process)."""
    import torch

    started = time.perf_counter()
    if kind == "ours":
        from xlsr_live.model import load_model
        from xlsr_live.offline import transcribe_file

        model = load_model(checkpoint, dtype=dtype)
        loaded = time.perf_counter()
        transcribe_file(model, audio_path)
    else:
        import soundfile

        asr = _common.transformers_pipeline(checkpoint)
        loaded = time.perf_counter()
        audio, _ = soundfile.read(audio_path, dtype="float32")
        with torch.inference_mode():
            asr(audio, chunk_length_s=10, stride_length_s=(4, 2))
    done = time.perf_counter()
    return {"kind": kind, "dtype": dtype, "load_s": round(loaded - started, 2),
            "transcribe_s": round(done - loaded, 2), "threads": torch.get_num_threads(),
            "peak_rss_mb": round(_common.peak_rss_mb())}


def run_worker(kind: str, checkpoint: Path, audio: Path, dtype: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, str(checkpoint), str(audio), dtype],
                         capture_output=True, text=True, check=True, env=_common.checkout_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    checkpoint = _common.model_path("random-xlsr53")
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio.wav"
        make_audio(audio, args.seconds)
        runs = [run_worker("ours", checkpoint, audio, dtype) for dtype in ("float32", "bfloat16", "int8")]
        if not args.skip_transformers:
            runs.append(run_worker("transformers", checkpoint, audio, "float32"))
    for run in runs:
        run["rtf"] = round(run["transcribe_s"] / args.seconds, 3)
    reference = next((r for r in runs if r["kind"] == "transformers"), None)
    print(f"{'runtime':<14}{'dtype':<10}{'load s':>8}{'time s':>8}{'RTF':>7}{'peak MB':>9}{'vs pipeline':>13}")
    for run in runs:
        ratio = f"{run['transcribe_s'] / reference['transcribe_s']:.2f}" if reference else "-"
        run["ratio_to_pipeline"] = float(ratio) if reference else None
        print(f"{run['kind']:<14}{run['dtype']:<10}{run['load_s']:>8}{run['transcribe_s']:>8}{run['rtf']:>7}"
              f"{run['peak_rss_mb']:>9}{ratio:>13}")
    report = {"audio_seconds": args.seconds, "machine": platform.processor() or platform.machine(),
              "cpu_flags": _common.cpu_flags(),
              "cpus": os.cpu_count(), "model": "XLSR-53 configuration, random weights",
              "runs": runs}
    _common.write_json(_common.RESULTS / "offline_rtf.json", report)


if __name__ == "__main__":
    main()
