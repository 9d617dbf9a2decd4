"""Offline speed and memory of an XLSR-53-size model: xlsr-live fp32/bf16 vs transformers' pipeline.

Each measurement runs in a fresh subprocess (peak RSS is per process). Prints a table and writes
benchmarks/results/offline_rtf.json.

    python benchmarks/offline_rtf.py [--seconds 60] [--skip-transformers]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 16_000


def make_audio(path: Path, seconds: float) -> None:
    """Speech-like test audio: espeak-ng reading text in a loop if available, else noise bursts."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    audio = rng.standard_normal(int(seconds * SAMPLE_RATE)).astype("float32") * 0.05
    try:
        text = "the quick brown fox jumps over the lazy dog. " * int(seconds / 2)
        out = subprocess.run(["espeak-ng", "--stdout", "-s", "160", text], capture_output=True, check=True).stdout
        speech, rate = soundfile.read(__import__("io").BytesIO(out), dtype="float32")
        import soxr

        speech = soxr.resample(speech, rate, SAMPLE_RATE)[: audio.size]
        audio[: speech.size] += speech
    except (OSError, subprocess.CalledProcessError):
        pass
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
        from transformers import (Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, pipeline)

        model = Wav2Vec2ForCTC.from_pretrained(checkpoint).eval()
        asr = pipeline("automatic-speech-recognition", model=model,
                       tokenizer=Wav2Vec2CTCTokenizer(f"{checkpoint}/vocab.json"),
                       feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True),
                       device="cpu")
        loaded = time.perf_counter()
        audio, _ = soundfile.read(audio_path, dtype="float32")
        with torch.inference_mode():
            asr(audio, chunk_length_s=10, stride_length_s=(4, 2))
    done = time.perf_counter()
    return {"kind": kind, "dtype": dtype, "load_s": round(loaded - started, 2),
            "transcribe_s": round(done - loaded, 2), "threads": torch.get_num_threads(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def cpu_flags() -> list[str]:
    """The CPU features that decide bf16/int8 speed (avx512_bf16, amx, vnni)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni")))


def run_worker(kind: str, checkpoint: Path, audio: Path, dtype: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, str(checkpoint), str(audio), dtype],
                         capture_output=True, text=True, check=True)
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
    from xlsr_live.model.testing import XLSR_53, write_random_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = write_random_checkpoint(Path(tmp) / "xlsr53", **XLSR_53)
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
    RESULTS.mkdir(exist_ok=True)
    report = {"audio_seconds": args.seconds, "machine": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(),
              "cpus": __import__("os").cpu_count(), "model": "XLSR-53 configuration, random weights",
              "runs": runs}
    (RESULTS / "offline_rtf.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
