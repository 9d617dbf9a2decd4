"""Many concurrent native-protocol clients streaming at real-time pace against one server process.

    python benchmarks/load_soak.py [--model demo] [--connections 64] [--seconds 60]

Starts `python -m xlsr_live.server.cli --model MODEL --port 0` (its own process, as in production),
then opens `--connections` websocket sessions from this process. Each streams looped espeak-ng
speech with pauses (a different offset per session) in 100 ms blocks at real time for `--seconds`,
reads events concurrently, sends `end` and waits for `end_of_stream`.

Checks per session: samples the server received (`end_of_stream.samples`) equal samples sent; one
final per `speech_start` (every final delivered); close code 1000. Partial latency: from the wall
time the block holding a partial's `end` was sent to the partial's arrival (p50 / p95 / max over
all sessions). `--model tiny` uses a random tiny checkpoint (smoke run). Writes
benchmarks/results/load_soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_memory import loop_audio  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK = 1600  # 100 ms at 16 kHz


def model_path(name: str) -> str:
    """The --model for the server: as given, or a fresh random tiny checkpoint for 'tiny'."""
    if name != "tiny":
        return name
    from xlsr_live.model.testing import write_random_checkpoint

    return str(write_random_checkpoint(Path(tempfile.mkdtemp(prefix="load-tiny-"))))


def start_server(model: str, connections: int, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """The server process and its ws:// URL (read from its first line of output); `extra`: more
    `xlsr-live serve` flags (e.g. --context kv_cache)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "xlsr_live.server.cli", "--model", model, "--port", "0",
                             "--max-connections", str(connections + 8), "--max-connections-per-address", "0",
                             "--log-level", "WARNING", *extra], stdout=subprocess.PIPE, env=env, text=True)
    line = proc.stdout.readline()
    if " on " not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split(" on ")[1].split()[0]


async def session(url: str, audio: np.ndarray, seconds: float) -> dict:
    """One client: paced blocks, concurrent reading; its counts and partial latencies."""
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    latencies: list[float] = []
    counts = {"partial": 0, "final": 0, "speech_start": 0, "error": 0}
    last: dict = {}
    async with connect(url + "/native", max_queue=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))

        async def read() -> None:
            async for raw in ws:
                message, now = json.loads(raw), loop.time()
                kind = message["type"]
                counts[kind] = counts.get(kind, 0) + 1
                if kind == "partial" and sent_at:
                    block = min(max(int(np.ceil(message["end"] * 10)) - 1, 0), len(sent_at) - 1)
                    latencies.append(now - sent_at[block])
                last.update(message)

        reader = asyncio.ensure_future(read())
        start, blocks = loop.time(), int(seconds * 10)
        try:
            for k in range(blocks):
                await asyncio.sleep(max(0.0, start + k * 0.1 - loop.time()))  # real-time pacing
                sent_at.append(loop.time())
                await ws.send(audio[k * BLOCK:(k + 1) * BLOCK].tobytes())
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(asyncio.shield(reader), 120)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()
        return {"samples_sent": blocks * BLOCK, "samples_received": last.get("samples"), "close": ws.close_code,
                "last": last.get("type"), "latencies": latencies, **counts}


def percentile(values: list[float], q: float) -> float:
    """q-th percentile in ms (nan when empty)."""
    return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")


async def run_clients(url: str, connections: int, seconds: float, clip: np.ndarray) -> list[dict]:
    """All sessions at once, each from a different offset of the looped clip."""
    need = int(seconds * 16_000) + BLOCK
    streams = [np.take(clip, np.arange(i * 7919, i * 7919 + need), mode="wrap") for i in range(connections)]
    streams = [(np.clip(s, -1, 32767 / 32768) * 32768).astype("<i2") for s in streams]
    return await asyncio.gather(*(session(url, s, seconds) for s in streams), return_exceptions=True)


def summarise(results: list, args) -> dict:
    """Per-run figures and pass/fail."""
    ok = [r for r in results if isinstance(r, dict)]
    failures = [repr(r) for r in results if not isinstance(r, dict)]
    latencies = [x for r in ok for x in r["latencies"]]
    samples_equal = sum(r["samples_received"] == r["samples_sent"] for r in ok)
    finals_complete = sum(r["final"] == r["speech_start"] and r["last"] == "end_of_stream" for r in ok)
    clean = sum(r["close"] == 1000 for r in ok)
    return {"model": args.model, "serve_args": args.serve_args, "connections": args.connections, "seconds": args.seconds,
            "sessions_ok": len(ok), "failures": failures, "samples_equal": samples_equal,
            "finals_complete": finals_complete, "clean_close": clean, "finals": sum(r["final"] for r in ok),
            "partials": len(latencies), "errors": sum(r["error"] for r in ok),
            "partial_latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                                   "max": percentile(latencies, 100)},
            "pass": len(ok) == args.connections == samples_equal == finals_complete == clean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="checkpoint, hub id, 'demo' or 'tiny' (random)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per session, sent at real time")
    parser.add_argument("--out", default=str(RESULTS / "load_soak.json"))
    parser.add_argument("--serve-args", default="", help="more flags for the server, e.g. '--context kv_cache'")
    args = parser.parse_args()
    if args.connections < 1 or args.seconds <= 0:
        raise ValueError(f"--connections {args.connections} and --seconds {args.seconds} must be positive")
    proc, url = start_server(model_path(args.model), args.connections, args.serve_args.split())
    try:
        started = time.perf_counter()
        results = asyncio.run(run_clients(url, args.connections, args.seconds, loop_audio()))
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
    summary = dict(summarise(results, args), wall_s=round(wall, 1))
    lat = summary["partial_latency_ms"]
    print("| model | connections | s each | sessions ok | samples equal | finals complete | clean close | finals "
          "| partials | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {args.connections} | {args.seconds:g} | {summary['sessions_ok']} | "
          f"{summary['samples_equal']} | {summary['finals_complete']} | {summary['clean_close']} | "
          f"{summary['finals']} | {summary['partials']} | {lat['p50']} | {lat['p95']} | {lat['max']} |")
    print("PASS" if summary["pass"] else f"FAIL: {summary['failures'][:3]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
