"""What the automatic defaults buy and cost (issue 12), on an XLSR-53-size model.

* `processes`: whole processes, model load included, on the held-out 1-minute recording:
  `xlsr-live transcribe FILE --stream` with no speed flags, the same with `--exact`, and
  transformers' chunked pipeline (chunk 10 s, strides 4/2 s). Streaming RTF = process wall time /
  audio duration (load included, so an upper bound), and the ratio to the pipeline's process;
  `--repeat N` runs the kinds round robin N times and reports medians.
* `agreement`: frame argmax agreement of the committed logits of the defaults (int8, kv_cache)
  against `--exact` (fp32, recompute), same windows, random XLSR-53-size weights, several seeds,
  on continuous synthetic voice (every frame inside an utterance).

    python benchmarks/defaults_bench.py processes --model /tmp/xlsr53
    python benchmarks/defaults_bench.py agreement --seeds 0 1 2 --seconds 20

Pause other work while timing (see HELPER_RULES / docs/performance.md). Writes
benchmarks/results/defaults_<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PIPELINE = """
import sys, soundfile, torch
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, pipeline
path, audio_path = sys.argv[1], sys.argv[2]
model = Wav2Vec2ForCTC.from_pretrained(path).eval()
asr = pipeline("automatic-speech-recognition", model=model, tokenizer=Wav2Vec2CTCTokenizer(f"{path}/vocab.json"),
               feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True), device="cpu")
audio, _ = soundfile.read(audio_path, dtype="float32")
with torch.inference_mode():
    asr(audio, chunk_length_s=10, stride_length_s=(4, 2))
"""


def timed(command: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one whole process (it must succeed)."""
    import resource

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # cwd too: `python -m` puts the working directory first on sys.path
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def processes(args) -> dict:
    """Whole-process wall times: defaults, --exact, transformers' pipeline."""
    import soundfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import heldout

    path, _ = heldout.load(args.minutes)
    seconds = soundfile.info(str(path)).duration
    cli = [sys.executable, "-m", "xlsr_live.cli", "transcribe", str(path), "--stream", "--model", args.model,
           "--device", "cpu"]
    runs = {"defaults": cli, "exact": cli + ["--exact"],
            "pipeline": [sys.executable, "-c", PIPELINE, args.model, str(path)]}
    report = {"model": args.model, "audio_s": round(seconds, 1), "repeat": args.repeat, "wall_s": {}, "cpu_s": {},
              "all_wall_s": {name: [] for name in args.runs}, "all_cpu_s": {name: [] for name in args.runs}}
    for _ in range(args.repeat):  # round robin, so that a noisy minute hits every kind alike
        for name in args.runs:
            wall, cpu = timed(runs[name])
            report["all_wall_s"][name].append(round(wall, 2))
            report["all_cpu_s"][name].append(round(cpu, 2))
            print(f"{name}: wall {wall:.1f} s (RTF {wall / seconds:.3f}), CPU {cpu:.1f} s", flush=True)
    for name in args.runs:  # medians
        report["wall_s"][name] = float(np.median(report["all_wall_s"][name]))
        report["cpu_s"][name] = float(np.median(report["all_cpu_s"][name]))
    for kind in ("wall_s", "cpu_s"):
        values = report[kind]
        report[f"rtf_{kind[:-2]}"] = {name: round(v / seconds, 3) for name, v in values.items()}
        if "pipeline" in values:
            report[f"ratio_to_pipeline_{kind[:-2]}"] = {name: round(v / values["pipeline"], 3)
                                                       for name, v in values.items()}
    return report


def committed_logits(model, options, audio: np.ndarray) -> np.ndarray:
    """Committed logit rows of every window, in stream order (the split API, one stream)."""
    from xlsr_live.streaming.recognizer import StreamingRecognizer
    from xlsr_live.streaming.windows import run_jobs

    recognizer, rows = StreamingRecognizer(model, options), []

    def drain() -> None:
        while (job := recognizer.next_job()) is not None:
            logits = run_jobs(model, [job])[0]
            rows.append(np.asarray(logits)[job.commit_start:job.commit_end])
            recognizer.complete(job, logits)

    for start in range(0, audio.size, 1600):
        recognizer.push(audio[start:start + 1600])
        drain()
    recognizer.end()
    drain()
    return np.concatenate(rows)


def agreement(args) -> dict:
    """Argmax agreement of defaults vs --exact per seed (random XLSR-53-size weights)."""
    import torch

    from gpu_streams import voiced_audio
    from xlsr_live.defaults import RecognizerOptions, load_recognizer
    from xlsr_live.model.testing import XLSR_53, write_random_checkpoint

    torch.set_num_threads(args.threads)
    report = {"seconds": args.seconds, "seeds": {}}
    audio = voiced_audio(args.seconds, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            path = write_random_checkpoint(Path(tmp) / f"xlsr53_{seed}", seed=seed, **XLSR_53)
            logits = {}
            for name, exact in (("defaults", False), ("exact", True)):
                setup = load_recognizer(RecognizerOptions(model=str(path), device="cpu", exact=exact))
                logits[name] = committed_logits(setup.model, setup.streaming, audio)
                del setup
            fast, ref = logits["defaults"], logits["exact"]
            same = float(np.mean(fast.argmax(-1) == ref.argmax(-1)))
            report["seeds"][seed] = {"frames": int(ref.shape[0]), "argmax_agreement": round(same, 4),
                                     "max_abs_logit_diff": round(float(np.abs(fast - ref).max()), 4)}
            print(f"seed {seed}: {report['seeds'][seed]}", flush=True)
    values = [row["argmax_agreement"] for row in report["seeds"].values()]
    report["mean_agreement"], report["min_agreement"] = round(float(np.mean(values)), 4), min(values)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("processes", "agreement"))
    parser.add_argument("--model", default="/tmp/xlsr53", help="processes: checkpoint (XLSR-53 size)")
    parser.add_argument("--minutes", type=float, default=1.0, help="processes: held-out recording length")
    parser.add_argument("--runs", nargs="+", default=["defaults", "exact", "pipeline"])
    parser.add_argument("--repeat", type=int, default=1, help="processes: runs of each kind (medians reported)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="agreement: random weights")
    parser.add_argument("--seconds", type=float, default=20.0, help="agreement: synthetic voice per seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    report = processes(args) if args.mode == "processes" else agreement(args)
    out = Path(args.out or RESULTS / f"defaults_{args.mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
