"""Bounded memory on long files: transcribe N minutes of audio from disk and report peak RSS.

    python benchmarks/long_file.py [--minutes 60] [--model PATH]   (default: a tiny random model)

Writes benchmarks/results/long_file.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

import _common

SAMPLE_RATE = _common.SAMPLE_RATE


def write_long_file(path: Path, minutes: float) -> None:
    """Noise with periodic tone bursts, written block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as out:
        for _ in range(int(minutes * 6)):  # 10 s blocks
            block = 0.02 * rng.standard_normal(10 * SAMPLE_RATE)
            block[: 4 * SAMPLE_RATE] += 0.3 * np.sin(np.arange(4 * SAMPLE_RATE) * 0.1)
            out.write(block.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="tiny", help=_common.MODEL_HELP)
    args = parser.parse_args()
    from xlsr_live.model import load_model
    from xlsr_live.offline import transcribe_file

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(_common.model_path(args.model))
        path = Path(tmp) / "long.wav"
        write_long_file(path, args.minutes)
        rss_before = _common.peak_rss_mb()
        started = time.perf_counter()
        result = transcribe_file(model, path)
        elapsed = time.perf_counter() - started
    peak = _common.peak_rss_mb()
    report = {"minutes": args.minutes, "model": "tiny random" if args.model == "tiny" else args.model,
              "seconds": round(elapsed, 1),
              "rtf": round(elapsed / (args.minutes * 60), 4), "peak_rss_mb_before": round(rss_before),
              "peak_rss_mb": round(peak), "words": len(result.words), "duration_s": result.duration}
    print(json.dumps(report, indent=2))
    _common.write_json(_common.RESULTS / "long_file.json", report)


if __name__ == "__main__":
    main()
