"""Speed options and their price: per-stream streaming RTF and the CER/WER each option costs.

Streams the held-out long recording (benchmarks/heldout.py) through StreamingRecognizer.feed in
100 ms blocks once per option and repeat, options interleaved (so that load from other processes
hits them alike); RTF = median compute time / audio duration. Quality: CER/WER of the finals
against the reference text and against the first option's output (fp32, full-context recompute).

    python benchmarks/speed_options.py --model demo --minutes 3
    python benchmarks/speed_options.py --model /tmp/xlsr53 --minutes 1 --speed-only \\
        --options fp32 int8 int8+kv --pipeline          # + transformers' offline pipeline, same file
    python benchmarks/speed_options.py --model /tmp/xlsr53 --micro   # transformer-only variants

Option names: dtype (fp32 | bf16 | int8), then "+kv" (context="kv_cache"), "+left<ms>"
(left context), "+fused" (fused QKV projection), "+t<n>" (torch threads), joined with "+".
--pause-training stops `train.py --run` processes (SIGSTOP) during each timed run only and
always resumes them (SIGCONT). Writes benchmarks/results/speed_options_<model>.json.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile

import _common
import heldout
from _common import BLOCK, cpu_flags

RESULTS = _common.RESULTS
DEFAULT_OPTIONS = ["fp32", "fp32+fused", "bf16", "int8", "fp32+left2000", "fp32+left1000", "fp32+kv",
                   "int8+kv", "int8+left1000", "int8+kv+left1000", "int8+kv+fused"]
def parse_option(name: str) -> dict:
    """'int8+kv+left1000+fused+t1' -> {dtype, context, left_context_ms, fuse_qkv, threads}."""
    parts = name.split("+")
    if parts[0] not in ("fp32", "bf16", "int8"):
        raise ValueError(f"option {name!r}: first part must be fp32, bf16 or int8")
    spec = {"dtype": parts[0], "context": "recompute", "left_context_ms": 3000, "fuse_qkv": False, "threads": None}
    for part in parts[1:]:
        if part == "kv":
            spec["context"] = "kv_cache"
        elif part == "fused":
            spec["fuse_qkv"] = True
        elif part.startswith("left") and part[4:].isdigit():
            spec["left_context_ms"] = int(part[4:])
        elif part.startswith("t") and part[1:].isdigit():
            spec["threads"] = int(part[1:])
        else:
            raise ValueError(f"option {name!r}: unknown part {part!r}")
    return spec


class Models:
    """Loaded models by (dtype, fused), loaded on first use."""

    def __init__(self, path: str):
        self.path, self._loaded = path, {}

    def get(self, spec: dict):
        from xlsr_live.model import load_model

        key = (spec["dtype"], spec["fuse_qkv"])
        if key not in self._loaded:
            self._loaded[key] = load_model(self.path, dtype=spec["dtype"], fuse_qkv=spec["fuse_qkv"])
        return self._loaded[key]


def stream(model, audio: np.ndarray, spec: dict, pause: bool) -> tuple[str, float, float, int]:
    """Feed the file in 100 ms blocks: (finals text, wall s, process CPU s, peak per-stream state bytes)."""
    import torch

    from xlsr_live.streaming.options import StreamingOptions, WindowOptions
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    window = WindowOptions(left_context_ms=spec["left_context_ms"], context=spec["context"])
    recognizer = StreamingRecognizer(model, StreamingOptions(window=window))
    threads = torch.get_num_threads()
    torch.set_num_threads(spec["threads"] or threads)
    finals, peak = [], 0
    try:
        with _common.paused(pause):
            started, cpu = time.perf_counter(), time.process_time()
            for index in range(0, audio.size, BLOCK):
                events = recognizer.feed(audio[index:index + BLOCK])
                finals += [e.text for e in events if e.type == "final" and e.text]
                peak = max(peak, recognizer.state_bytes())
            finals += [e.text for e in recognizer.flush() if e.type == "final" and e.text]
            spent, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    return " ".join(finals), spent, cpu, peak


def pipeline_seconds(asr, audio: np.ndarray, pause: bool) -> tuple[float, float]:
    """(wall s, process CPU s) of one pipeline run (chunk_length_s=10, stride_length_s=(4, 2))."""
    import torch

    with _common.paused(pause), torch.inference_mode():
        started, cpu = time.perf_counter(), time.process_time()
        asr(audio, chunk_length_s=10, stride_length_s=(4, 2))
        return time.perf_counter() - started, time.process_time() - cpu


def quality(hypothesis: str, reference: str) -> dict:
    import jiwer

    return {"cer": round(jiwer.cer(reference, hypothesis), 4), "wer": round(jiwer.wer(reference, hypothesis), 4)}


def run_options(args, audio: np.ndarray, reference: str) -> tuple[list[dict], dict | None]:
    """Interleaved repeats of every option (and the pipeline); rows with median RTF, state, quality."""
    specs = {name: parse_option(name) for name in args.options}
    path = _common.model_path(args.model)
    models = Models(path)
    asr = _common.transformers_pipeline(path) if args.pipeline else None
    times = {name: [] for name in list(specs) + ["pipeline"]}
    cpus = {name: [] for name in times}
    texts, peaks = {}, {}
    seconds = audio.size / 16_000
    for repeat in range(args.repeats):
        for name, spec in specs.items():
            text, spent, cpu, peak = stream(models.get(spec), audio, spec, args.pause_training)
            times[name].append(spent)
            cpus[name].append(cpu)
            texts[name], peaks[name] = text, peak
            print(f"  repeat {repeat} {name}: {spent:.1f} s (RTF {spent / seconds:.3f}, CPU {cpu:.1f} s)", flush=True)
        if asr is not None:
            spent, cpu = pipeline_seconds(asr, audio, args.pause_training)
            times["pipeline"].append(spent)
            cpus["pipeline"].append(cpu)
            print(f"  repeat {repeat} pipeline: {spent:.1f} s (RTF {spent / seconds:.3f}, CPU {cpu:.1f} s)", flush=True)
    baseline = texts[args.options[0]]
    rows = []
    for name in specs:
        row = {"option": name, **specs[name], "rtf": round(statistics.median(times[name]) / seconds, 4),
               "cpu_rtf": round(statistics.median(cpus[name]) / seconds, 4),
               "times_s": [round(t, 2) for t in times[name]], "state_mb": round(peaks[name] / 2**20, 2)}
        if not args.speed_only:
            row["vs_reference"] = quality(texts[name], reference)
            row["vs_baseline"] = quality(texts[name], baseline)
        rows.append(row)
    pipe = None
    if asr is not None:
        pipe = {"rtf": round(statistics.median(times["pipeline"]) / seconds, 4),
                "cpu_rtf": round(statistics.median(cpus["pipeline"]) / seconds, 4),
                "times_s": [round(t, 2) for t in times["pipeline"]]}
        for row in rows:
            row["ratio_to_pipeline"] = round(row["rtf"] / pipe["rtf"], 3)
            row["cpu_ratio_to_pipeline"] = round(row["cpu_rtf"] / pipe["cpu_rtf"], 3)
    return rows, pipe


def print_rows(rows: list[dict], speed_only: bool) -> None:
    base = rows[0]["rtf"]
    header = f"{'option':<22}{'RTF':>8}{'CPU RTF':>8}{'speed-up':>9}{'state MB':>9}{'/pipe':>7}"
    if not speed_only:
        header += f"{'CER ref':>9}{'WER ref':>9}{'dCER':>8}{'CER base':>9}{'WER base':>9}"
    print(header)
    for r in rows:
        line = (f"{r['option']:<22}{r['rtf']:>8.3f}{r['cpu_rtf']:>8.3f}{base / r['rtf']:>9.2f}"
                f"{r['state_mb']:>9.2f}{r.get('ratio_to_pipeline', '-'):>7}")
        if not speed_only:
            ref, vsb = r["vs_reference"], r["vs_baseline"]
            delta = ref["cer"] - rows[0]["vs_reference"]["cer"]
            line += f"{ref['cer']:>9.4f}{ref['wer']:>9.4f}{delta:>+8.4f}{vsb['cer']:>9.4f}{vsb['wer']:>9.4f}"
        print(line)


def micro(args) -> dict:
    """Transformer-only (encode_features) timings of exact variants, interleaved, median of repeats."""
    import copy

    import torch

    from xlsr_live.model import load_model
    from xlsr_live.model.quantize import quantize_int8

    path = _common.model_path(args.model)
    base = load_model(path).model
    fused = copy.deepcopy(base)
    fused.fuse_qkv()
    variants = {"fp32": (base, False), "fp32 fused": (fused, False), "fp32 all-true mask": (base, True),
                "bf16": (load_model(path, dtype="bf16").model, False),
                "int8": (quantize_int8(copy.deepcopy(base)), False),
                "int8 fused": (quantize_int8(copy.deepcopy(fused)), False)}
    channels = base.config.conv_dim[-1]
    results = {}
    for frames in args.micro_frames:
        x = torch.randn(1, frames, channels)
        x16 = x.to(torch.bfloat16)
        mask = torch.ones(1, frames, dtype=torch.bool)
        for threads in args.micro_threads:
            torch.set_num_threads(threads)
            samples = {name: [] for name in variants}
            with _common.paused(args.pause_training), torch.inference_mode():
                for name, (model, masked) in variants.items():
                    model.encode_features(x16 if name == "bf16" else x, mask if masked else None)  # warm-up
                for _ in range(args.micro_repeats):
                    for name, (model, masked) in variants.items():
                        started = time.perf_counter()
                        model.encode_features(x16 if name == "bf16" else x, mask if masked else None)
                        samples[name].append(time.perf_counter() - started)
            for name, values in samples.items():
                key = f"{frames} frames, {threads} threads, {name}"
                results[key] = round(statistics.median(values), 4)
                print(f"{key:<45}{results[key]:>8.4f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--minutes", type=float, default=3.0, help="held-out recording length (1 or 3 cached)")
    parser.add_argument("--options", nargs="+", default=DEFAULT_OPTIONS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--speed-only", action="store_true", help="no quality columns (random-weight models)")
    parser.add_argument("--pipeline", action="store_true", help="also time transformers' offline pipeline")
    parser.add_argument("--pause-training", action="store_true", help="SIGSTOP train.py during each timing")
    parser.add_argument("--micro", action="store_true", help="transformer-only timings of exact variants")
    parser.add_argument("--micro-repeats", type=int, default=5)
    parser.add_argument("--micro-frames", type=int, nargs="+", default=[70, 220], help="--micro input lengths")
    parser.add_argument("--micro-threads", type=int, nargs="+", default=[1, 2], help="--micro torch threads")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # run finally blocks
    name = Path(args.model).name
    report = {"model": args.model, "cpu_flags": cpu_flags(), "cpus": __import__("os").cpu_count()}
    if args.micro:
        report["micro"] = micro(args)
    else:
        path, segments = heldout.load(args.minutes)
        audio, _ = soundfile.read(path, dtype="float32")
        reference = " ".join(s["text"] for s in segments)
        rows, pipe = run_options(args, audio, reference)
        report.update(audio_s=round(audio.size / 16_000, 1), threads=__import__("torch").get_num_threads(),
                      rows=rows, pipeline=pipe)
        print(f"model {args.model}, {report['audio_s']} s held-out audio, {report['threads']} torch threads; "
              f"CPU flags {' '.join(report['cpu_flags'])}")
        if pipe:
            print(f"transformers pipeline (chunk 10 s, stride 4/2): RTF {pipe['rtf']}, CPU RTF {pipe['cpu_rtf']}; "
                  "/pipe = streaming time / pipeline time")
        print_rows(rows, args.speed_only)
    _common.write_json(args.out or RESULTS / f"speed_options_{name}{'_micro' if args.micro else ''}.json", report)


if __name__ == "__main__":
    main()
