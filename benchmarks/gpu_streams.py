"""Many simultaneous real-time streams on one GPU (issue 6 target 3).

Loads an XLSR-53-size model (random weights unless --model is given) in bf16/fp16, creates
--streams StreamingRecognizers and simulates them in lock step, one --chunk-ms of audio per
stream per step, through the engine's micro-batching split API: push() every stream, then
repeatedly next_job() (conv features, per stream) -> transformer forward over fixed-shape
buckets (batch size in --batch-buckets, frames rounded up to --frame-step) -> complete(), until
no window is ready. Bucketed forwards run as CUDA graphs (--mode graphs, captured once per shape
before measuring), torch.compile (--mode compile, one compile per shape) or eagerly (--mode eager,
the only mode on CPU). A step is real-time when it takes less than the chunk.

Reports p50/p95/max step latency (after --warmup-s of stream time), the time split (push / conv
features / forward / decode), model FLOPs utilisation (useful FLOPs counted analytically per
window: conv feature encoder for the new audio + projection, positional conv, attention and FFN
of every layer over the window's real frames, CTC head; padding is not counted), and memory per
stream (device memory held by the streams' state; CPU: reachable state, benchmarks/memory.py).

    python benchmarks/gpu_streams.py --streams 250 500 1000          # CUDA, xlsr-live's defaults (kv_cache, eager)
    python benchmarks/gpu_streams.py --streams 250 500 1000 --context recompute   # CUDA graphs of recompute windows
    python benchmarks/gpu_streams.py --device cpu --streams 4         # smoke test (int8, kv_cache)

Audio: continuous synthetic voiced sound (every window full: the heaviest case), unless --audio
FILE. Writes benchmarks/results/gpu_streams.json.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import _common

from xlsr_live.defaults import DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS  # this checkout's, after _common

RATE = _common.SAMPLE_RATE
PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},  # dense tensor-core peaks (SXM)
               "H200": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},
               "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0}}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "int8": torch.float32}
SHORT_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "int8": "int8"}


def voiced_audio(seconds: float, seed: int) -> np.ndarray:
    """Speech-like voiced sound (harmonics under three formants, syllable-rate envelope): VAD-positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))) / RATE
    out = np.zeros_like(t)
    for k in range(1, 25):
        gain = sum(np.exp(-((k * 130.0 - f) / bw) ** 2) for f, bw in ((700, 200), (1200, 200), (2600, 300)))
        out += (gain + 0.05) * np.sin(k * phase) / k
    out *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))
    return (0.5 * out / np.abs(out).max() + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def window_flops(config, frames: int) -> float:
    """Useful FLOPs of the transformer part for one window of `frames` frames."""
    h, f, v, c = config.hidden_size, config.intermediate_size, config.vocab_size, config.conv_dim[-1]
    pos = 2 * frames * h * (h // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings
    layer = 8 * frames * h * h + 4 * frames * frames * h + 4 * frames * h * f
    return 2 * frames * c * h + pos + config.num_hidden_layers * layer + 2 * frames * h * v


def conv_flops(config, samples: int) -> float:
    """FLOPs of the conv feature encoder over `samples` new samples."""
    total, length, channels = 0.0, samples, 1
    for dim, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        total += 2 * max(length, 0) * channels * dim * kernel
        channels = dim
    return total


class BucketRunner:
    """Transformer forwards over fixed (batch, frames) shapes: CUDA graphs, torch.compile or eager."""

    def __init__(self, model, mode: str, batch_buckets: list[int], frame_step: int):
        self.model, self.mode, self.frame_step = model, mode, frame_step
        self.batch_buckets = sorted(batch_buckets)
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.pool = None
        self.fn = model.model.encode_features
        if mode == "compile":
            self.fn = torch.compile(self.fn, dynamic=False)

    def shape(self, batch: int, frames: int) -> tuple[int, int]:
        bucket = next((b for b in self.batch_buckets if b >= batch), self.batch_buckets[-1])
        return bucket, self.frame_step * math.ceil(frames / self.frame_step)

    @torch.inference_mode()
    def capture(self, batch: int, frames: int) -> None:
        """Record one CUDA graph for this shape (static input, mask and output tensors)."""
        channels = self.model.config.conv_dim[-1]
        features = torch.zeros((batch, frames, channels), device=self.model.device, dtype=self.model.dtype)
        mask = torch.ones((batch, frames), device=self.model.device, dtype=torch.bool)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.fn(features, mask)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        self.pool = self.pool or torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.fn(features, mask)
        self.graphs[(batch, frames)] = (graph, features, mask, output)

    @torch.inference_mode()
    def run(self, jobs: list) -> list[torch.Tensor]:
        """Logits (frames_i, V) of each job, from one padded forward of a bucket shape.

        kv_cache windows (the default context) run through the engine's own batched pass
        (`run_jobs`, what the server's batcher calls), eagerly: graphs cover recompute windows only.
        """
        if any(job.cached for job in jobs):
            from xlsr_live.streaming.windows import run_jobs

            return [torch.from_numpy(rows) for rows in run_jobs(self.model, jobs)]
        batch, frames = self.shape(len(jobs), max(job.num_frames for job in jobs))
        if self.mode == "graphs":
            if (batch, frames) not in self.graphs:
                self.capture(batch, frames)
            graph, features, mask, output = self.graphs[(batch, frames)]
            features.zero_()
            mask.zero_()
        else:
            channels = self.model.config.conv_dim[-1]
            features = torch.zeros((batch, frames, channels), device=self.model.device, dtype=self.model.dtype)
            mask = torch.zeros((batch, frames), device=self.model.device, dtype=torch.bool)
        for i, job in enumerate(jobs):
            features[i, :job.num_frames] = job.features
            mask[i, :job.num_frames] = True
        mask[len(jobs):, 0] = True  # padding rows attend to one frame: no all-masked softmax
        if self.mode == "graphs":
            graph.replay()
        else:
            output = self.fn(features, mask)
        rows = output[:len(jobs)].float().cpu()  # one device -> host copy
        return [rows[i, :job.num_frames] for i, job in enumerate(jobs)]

    def prepare(self, max_frames: int) -> float:
        """Capture every (batch, frames) bucket up to `max_frames` before measuring; seconds spent."""
        if self.mode != "graphs":
            return 0.0
        started = time.perf_counter()
        for batch in self.batch_buckets:
            for frames in range(self.frame_step, max_frames + self.frame_step, self.frame_step):
                if (batch, frames) not in self.graphs:
                    self.capture(batch, frames)
        return time.perf_counter() - started


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_step(streams, chunks, runner, max_batch: int, device, timing: dict) -> tuple[float, float]:
    """One chunk into every stream and all ready windows through the model; (FLOPs, conv FLOPs)."""
    config, flops, convs = runner.model.config, 0.0, 0.0
    started = time.perf_counter()
    for rec, chunk in zip(streams, chunks):
        rec.push(chunk)
    convs += conv_flops(config, sum(c.size for c in chunks) // max(len(chunks), 1)) * len(chunks)
    timing["push"] += time.perf_counter() - started
    while True:
        started = time.perf_counter()
        jobs = [(rec, job) for rec in streams if (job := rec.next_job()) is not None]
        synchronize(device)
        timing["conv"] += time.perf_counter() - started
        if not jobs:
            return flops, convs
        jobs.sort(key=lambda pair: pair[1].num_frames)
        for start in range(0, len(jobs), max_batch):
            group = jobs[start:start + max_batch]
            started = time.perf_counter()
            logits = runner.run([job for _, job in group])
            timing["forward"] += time.perf_counter() - started
            flops += sum(window_flops(config, job.num_frames) for _, job in group)
            started = time.perf_counter()
            for (rec, job), rows in zip(group, logits):
                rec.complete(job, rows)
            timing["decode"] += time.perf_counter() - started


def stream_memory(model, streams, device, before: int) -> int:
    """Bytes of state per stream: device memory on CUDA, reachable state (memory.py) on CPU."""
    if device.type == "cuda":
        return (torch.cuda.memory_allocated(device) - before) // len(streams)
    return _common.state_bytes(streams[0], (model, model.model, model.vocab, model.config))["total"]


def simulate(model, runner, count: int, args, audio: np.ndarray | None) -> dict:
    """`count` streams for args.seconds of stream time; step latencies after the warm-up."""
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    device = model.device
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    streams = [StreamingRecognizer(model, streaming_options(args)) for _ in range(count)]
    sources = [voiced_audio(args.seconds + 1, seed) if audio is None else np.roll(audio, -seed * 7 * RATE)
               for seed in range(min(count, 16))]
    chunk = args.chunk_ms * RATE // 1000
    steps = int(args.seconds * 1000 // args.chunk_ms)
    timing = dict.fromkeys(("push", "conv", "forward", "decode"), 0.0)
    latencies, flops, convs, measured = [], 0.0, 0.0, 0.0
    for step in range(steps):
        chunks = [sources[i % len(sources)][(step * chunk) % (sources[i % len(sources)].size - chunk):][:chunk]
                  for i in range(count)]
        started = time.perf_counter()
        step_flops, step_convs = run_step(streams, chunks, runner, args.max_batch, device, timing)
        synchronize(device)
        spent = time.perf_counter() - started
        if (step + 1) * args.chunk_ms / 1000 > args.warmup_s:
            latencies.append(spent)
            flops, convs, measured = flops + step_flops, convs + step_convs, measured + spent
    per_stream = stream_memory(model, streams, device, before)
    achieved = (flops + convs) / max(measured, 1e-9) / 1e12
    peak = args.peak_tflops or peak_tflops(device, args.dtype)
    return {"streams": count, "steps_measured": len(latencies),
            "step_p50_s": _common.percentile(latencies, 50, digits=4),
            "step_p95_s": _common.percentile(latencies, 95, digits=4),
            "step_max_s": round(max(latencies), 4) if latencies else None,
            "real_time": bool(latencies) and float(np.percentile(latencies, 95)) < args.chunk_ms / 1000,
            "time_split_s": {k: round(v, 3) for k, v in timing.items()},
            "achieved_tflops": round(achieved, 3), "mfu": round(achieved / peak, 4) if peak else None,
            "transformer_gflop_per_full_window": round(window_flops(model.config, max_window_frames(args)) / 1e9, 1),
            "memory_per_stream_bytes": per_stream}


def streaming_options(args):
    """Engine options whose chunk is the simulation step (the other windows: xlsr-live's defaults)."""
    from xlsr_live.defaults import RecognizerOptions
    from xlsr_live.streaming.options import StreamingOptions

    options = RecognizerOptions(chunk_ms=args.chunk_ms, lookahead_ms=args.lookahead_ms)
    return StreamingOptions(window=options.window_options(args.context), decoder=options.decoder_options())


def max_window_frames(args) -> int:
    """Frames of the longest window (left context + chunk + lookahead, + 1)."""
    window = streaming_options(args).window
    return (window.left_context_ms + window.chunk_ms + window.lookahead_ms) // 20 + 1


def peak_tflops(device: torch.device, dtype: str) -> float | None:
    """Dense peak of known GPUs for the dtype (None: unknown, e.g. CPU; see --peak-tflops)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peaks[dtype] for key, peaks in PEAK_TFLOPS.items() if key in name), None)


def load(args):
    """The model on the device in the dtype; a random XLSR-53-size checkpoint unless --model."""
    from xlsr_live.model import load_model

    return load_model(_common.model_path(args.model), device=args.device, dtype=args.dtype)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: xlsr-live's for the device (bf16 or fp16 on CUDA, int8 on CPU)")
    parser.add_argument("--model", default="random-xlsr53", help=_common.MODEL_HELP)
    parser.add_argument("--streams", type=int, nargs="+", default=[250, 500, 1000, 1500])
    parser.add_argument("--seconds", type=float, default=None, help="stream time (default 20 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup-s", type=float, default=None, help="not measured (default: 5 on CUDA, 2 on CPU)")
    parser.add_argument("--chunk-ms", type=int, default=DEFAULT_CHUNK_MS)
    parser.add_argument("--lookahead-ms", type=int, default=DEFAULT_LOOKAHEAD_MS)
    parser.add_argument("--context", choices=("kv_cache", "recompute"), default="kv_cache",
                        help="left context (default: kv_cache, xlsr-live's default for XLSR models)")
    parser.add_argument("--mode", choices=("graphs", "compile", "eager"), default=None,
                        help="default: graphs on CUDA with --context recompute, else eager")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--batch-buckets", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--frame-step", type=int, default=32, help="frames are padded to a multiple of this")
    parser.add_argument("--peak-tflops", type=float, default=None, help="for MFU when the GPU is not known")
    parser.add_argument("--audio", default=None, help="16 kHz file to stream instead of synthetic voice")
    parser.add_argument("--out", default=str(_common.RESULTS / "gpu_streams.json"))
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.dtype is None:
        from xlsr_live.defaults import default_dtype

        args.dtype = SHORT_DTYPES[default_dtype("cuda" if cuda else "cpu")[0]]
    args.mode = args.mode or ("graphs" if cuda and args.context == "recompute" else "eager")
    args.seconds = args.seconds or (20.0 if cuda else 5.0)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (5.0 if cuda else 2.0)
    if args.mode == "graphs" and not cuda:
        parser.error("--mode graphs needs a CUDA device")
    if args.mode != "eager" and args.context == "kv_cache":
        parser.error(f"--mode {args.mode} covers recompute windows only: add --context recompute")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    model = load(args)
    audio = None
    if args.audio:
        import soundfile

        audio = soundfile.read(args.audio, dtype="float32")[0]
    buckets = sorted({b for b in args.batch_buckets if b < args.max_batch} | {args.max_batch})
    runner = BucketRunner(model, args.mode, buckets, args.frame_step)
    device = model.device
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "dtype": args.dtype, "mode": args.mode, "chunk_ms": args.chunk_ms, "seconds": args.seconds,
              "load_s": round(time.perf_counter() - started, 1), "runs": []}
    report["capture_s"] = round(runner.prepare(max_window_frames(args)), 1)
    report["graphs"] = len(runner.graphs)
    print(f"{'streams':>8}{'p50':>8}{'p95':>8}{'max':>8}{'TFLOP/s':>9}{'MFU':>7}{'MiB/stream':>11}  real-time")
    for count in args.streams:
        row = simulate(model, runner, count, args, audio)
        report["runs"].append(row)
        print(f"{count:>8}{row['step_p50_s']!s:>8}{row['step_p95_s']!s:>8}{row['step_max_s']!s:>8}"
              f"{row['achieved_tflops']:>9}{row['mfu']!s:>7}{row['memory_per_stream_bytes'] / 2**20:>11.2f}"
              f"  {row['real_time']}  split {row['time_split_s']}", flush=True)
        if device.type == "cuda":
            report["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        _common.write_json(args.out, report)
        if not row["real_time"]:
            break


if __name__ == "__main__":
    main()
