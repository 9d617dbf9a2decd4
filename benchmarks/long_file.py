"""Bounded memory on long files: transcribe N minutes of audio from disk and report peak RSS.

    python benchmarks/long_file.py [--minutes 60] [--model PATH]   (default: a tiny random model)

Writes benchmarks/results/long_file.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 16_000


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
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    from xlsr_live.model import load_model
    from xlsr_live.model.testing import write_random_checkpoint
    from xlsr_live.offline import transcribe_file

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(args.model or write_random_checkpoint(Path(tmp) / "tiny"))
        path = Path(tmp) / "long.wav"
        write_long_file(path, args.minutes)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        result = transcribe_file(model, path)
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"minutes": args.minutes, "model": args.model or "tiny random", "seconds": round(elapsed, 1),
              "rtf": round(elapsed / (args.minutes * 60), 4), "peak_rss_mb_before": round(rss_before),
              "peak_rss_mb": round(peak), "words": len(result.words), "duration_s": result.duration}
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "long_file.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
