"""How many simultaneous real-time streams one server process sustains (issue 5, issue 6 target 2).

Starts the real websocket server in this process (port 0, like the tests), then for each level N
runs N clients at once, each streaming a different cut of the held-out recording
(benchmarks/heldout.py) at real-time pace in 100 ms messages, in a separate client process
(benchmarks/capacity_clients.py; --clients inline keeps them in this process). A level passes when
the p95 partial latency (defined in capacity_clients.py and docs/capacity.md) is below --p95-limit
and every stream received a final for every utterance it started and a clean end_of_stream.
Levels ramp up and stop at the first failure, per batching mode; --budget-s bounds the total.

    python benchmarks/capacity.py --model demo --levels 1 2 4 8 16 32 48 64 --modes on off
    python benchmarks/capacity.py --model /tmp/xlsr53 --levels 1 2 4 --seconds 30 --pause-training

Writes benchmarks/results/capacity.json (one run per model; --out to change) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _common
import capacity_clients
import heldout
from _common import TRAINING, machine, paused, percentile

RESULTS = _common.RESULTS
CLIENTS = Path(__file__).resolve().parent / "capacity_clients.py"
log = logging.getLogger("capacity")


def clip_offsets(total_s: float, seconds: float, count: int, stride_s: float = 7.3) -> list[float]:
    """`count` different clip starts spread over the recording (wrapping around)."""
    span = max(total_s - seconds, 0.0)
    return [round((i * stride_s) % span, 3) if span else 0.0 for i in range(count)]


def summarise(n: int, batching: bool, result: dict, server: dict, limit: float) -> dict:
    """One level's row: pooled latency percentiles, completeness, server load."""
    streams = result["streams"]
    latency = [v for s in streams for v in s["latency"]]
    ready = [v for s in streams for v in s["ready_latency"]]
    complete = sum(s["complete"] for s in streams)
    p95 = percentile(latency, 95)
    row = {"streams": n, "batching": batching, "partials": len(latency),
           "latency_p50": percentile(latency, 50), "latency_p95": p95, "latency_max": percentile(latency, 100),
           "ready_latency_p50": percentile(ready, 50), "ready_latency_p95": percentile(ready, 95),
           "complete_streams": complete, "finals": sum(s["finals"] for s in streams),
           "end_wait_p95": percentile([s.get("end_wait_s", 0.0) for s in streams], 95),
           "client_cpu_s": round(result.get("client_cpu_s") or 0.0, 2), **server}
    row["passed"] = bool(p95 is not None and p95 < limit and complete == n)
    return row


async def run_level(engine, n: int, batching: bool, args, offsets: list[float], wav: Path) -> dict:
    """Serve N paced streams once; the client result plus what the server measured."""
    from xlsr_live.server.app import SpeechServer
    from xlsr_live.server.options import ServerOptions

    options = ServerOptions(port=0, batching=batching, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                            max_connections=max(64, n + 8), idle_timeout_s=300.0,
                            # every client connects from 127.0.0.1, and the ramp must find where the
                            # server breaks: no per-address limit, no admission control
                            max_connections_per_address=0, busy_wait_ms=0, workers=args.workers)
    spec = {"wav": str(wav), "offsets_s": offsets[:n], "seconds": args.seconds, "speed": 1.0,
            "stagger_s": args.stagger_s, "lookahead_s": args.lookahead_s, "grace_s": args.grace_s}
    server = SpeechServer(engine, options)
    async with server:
        if args.feature_thread:
            separate_feature_thread(server.ctx.batcher)
        spec["url"] = server.url + "/native"
        cpu, wall = time.process_time(), time.monotonic()
        if args.clients == "inline":
            clips = capacity_clients.cut_clips(_read_int16(wav), spec["offsets_s"], args.seconds)
            result = {"streams": await capacity_clients.run_clients(
                spec["url"], clips, 1.0, args.stagger_s, args.lookahead_s, args.grace_s)}
        else:
            result = await _client_process(spec)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        metrics = server.ctx.metrics
        batches = max(metrics.batch_size.count, 1)
        stats = {"server_cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                 "server_cpu_per_stream": round(cpu / (n * args.seconds), 4),  # core-seconds per stream-second
                 "server_cpu_share": round(cpu / wall / (os.cpu_count() or 1), 3),
                 "mean_batch": round(metrics.batch_size.total / batches, 2),
                 "model_rtf": round(metrics.real_time_factor, 4),
                 "loadavg_1m_after": round(os.getloadavg()[0], 2)}
    return summarise(n, batching, result, stats, args.p95_limit)


def separate_feature_thread(batcher) -> None:
    """Experiment: run `batcher.call` work (next_job: conv features) on a thread of its own, so it
    no longer queues behind batched transformer forwards on the batcher's single worker."""
    import concurrent.futures

    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xlsr-features")

    async def call(fn):
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    batcher.call = call


async def _client_process(spec: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, str(CLIENTS), handle.name,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
    finally:
        os.unlink(handle.name)
    if proc.returncode:
        raise RuntimeError(f"client process failed with status {proc.returncode}")
    return json.loads(out)


def _read_int16(wav: Path) -> np.ndarray:
    import soundfile

    return soundfile.read(wav, dtype="int16")[0]


def ramp(engine, batching: bool, args, offsets: list[float], wav: Path, deadline: float) -> list[dict]:
    """Levels in order until one fails or the time budget is spent."""
    rows = []
    for n in args.levels:
        if time.monotonic() + args.seconds + args.stagger_s > deadline:
            log.warning("time budget spent: skipping N >= %d (batching %s)", n, batching)
            break
        with paused(args.pause_training):
            row = asyncio.run(run_level(engine, n, batching, args, offsets, wav))
        rows.append(row)
        print_row(row)
        if not row["passed"]:
            break
    return rows


HEADER = (f"{'batching':>8}{'N':>5}{'p50':>7}{'p95':>7}{'max':>7}{'ready95':>8}{'complete':>10}"
          f"{'batch':>7}{'RTF':>7}{'srvCPU':>7}{'cliCPU':>7}  pass")


def print_row(row: dict) -> None:
    mode = "on" if row["batching"] else "off"
    print(f"{mode:>8}{row['streams']:>5}{row['latency_p50']!s:>7}{row['latency_p95']!s:>7}"
          f"{row['latency_max']!s:>7}{row['ready_latency_p95']!s:>8}"
          f"{str(row['complete_streams']) + '/' + str(row['streams']):>10}{row['mean_batch']:>7}"
          f"{row['model_rtf']:>7}{row['server_cpu_share']:>7}{row['client_cpu_s']:>7}  "
          f"{'yes' if row['passed'] else 'NO'}", flush=True)


def largest_passing(rows: list[dict]) -> int:
    """Largest N that passed before the first failure (0 if none)."""
    best = 0
    for row in rows:
        if not row["passed"]:
            break
        best = row["streams"]
    return best


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 48, 64, 96])
    parser.add_argument("--modes", nargs="+", choices=("on", "off"), default=["on", "off"], help="batching")
    parser.add_argument("--seconds", type=float, default=45.0, help="audio per stream")
    parser.add_argument("--minutes", type=float, default=3.0, help="held-out recording to cut clips from")
    parser.add_argument("--p95-limit", type=float, default=1.0)
    parser.add_argument("--clients", choices=("process", "inline"), default="process")
    parser.add_argument("--stagger-s", type=float, default=1.0, help="streams start at random within this")
    parser.add_argument("--grace-s", type=float, default=60.0, help="wait after the audio for the last finals")
    parser.add_argument("--lookahead-s", type=float, default=0.4, help="engine lookahead")
    parser.add_argument("--chunk-ms", type=int, default=1000, help="engine chunk")
    parser.add_argument("--left-context-ms", type=int, default=3000, help="engine left context")
    parser.add_argument("--context", choices=("recompute", "kv_cache"), default="recompute", help="engine context")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the server")
    parser.add_argument("--workers", type=int, default=1, help="batches in flight (ServerOptions.workers)")
    parser.add_argument("--feature-thread", action="store_true",
                        help="experiment: next_job (conv features) on its own thread, not the batch worker")
    parser.add_argument("--budget-s", type=float, default=1800.0, help="stop starting levels after this")
    parser.add_argument("--pause-training", action="store_true", help=f"SIGSTOP '{TRAINING}' during each level")
    parser.add_argument("--out", default=str(RESULTS / "capacity.json"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    from xlsr_live.model import load_model
    from xlsr_live.server.engine import ModelEngine

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    wav, _ = heldout.load(args.minutes)
    total_s = _read_int16(wav).size / capacity_clients.SAMPLE_RATE
    offsets = clip_offsets(total_s, args.seconds, max(args.levels))
    from xlsr_live.streaming.options import StreamingOptions, WindowOptions

    window = WindowOptions(chunk_ms=args.chunk_ms, left_context_ms=args.left_context_ms,
                           lookahead_ms=round(args.lookahead_s * 1000), context=args.context)
    engine = ModelEngine(load_model(_common.model_path(args.model), dtype=args.dtype), StreamingOptions(window=window))
    deadline = time.monotonic() + args.budget_s
    print(f"model {args.model} ({args.dtype}), {args.seconds:g} s per stream, clients: {args.clients}, "
          f"window left/chunk/lookahead {args.left_context_ms}/{args.chunk_ms}/{round(args.lookahead_s * 1000)} ms")
    print(HEADER)
    runs = {mode: ramp(engine, mode == "on", args, offsets, wav, deadline) for mode in args.modes}
    report = {"model": args.model, "dtype": args.dtype, "context": args.context, "feature_thread": args.feature_thread,
              "threads": args.threads, "workers": args.workers,
              "seconds_per_stream": args.seconds, "window_ms": [args.left_context_ms, args.chunk_ms,
                                                               round(args.lookahead_s * 1000)],
              "p95_limit_s": args.p95_limit, "clients": args.clients, "machine": machine(),
              "largest_passing": {mode: largest_passing(rows) for mode, rows in runs.items()},
              "levels": {mode: rows for mode, rows in runs.items()}}
    print("largest N with p95 < %gs and all finals: %s" % (args.p95_limit, report["largest_passing"]))
    _common.write_json(args.out, report)


if __name__ == "__main__":
    main()
