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
import subprocess
import sys
import time

import numpy as np

import _common
import capacity_clients
from _common import BLOCK, loop_audio

RESULTS = _common.RESULTS


def start_server(model: str, connections: int, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """The server process and its ws:// URL (read from its first line of output); `extra`: more
    `xlsr-live serve` flags (e.g. --context kv_cache)."""
    proc = subprocess.Popen([sys.executable, "-m", "xlsr_live.server.cli", "--model", model, "--port", "0",
                             "--max-connections", str(connections + 8), "--max-connections-per-address", "0",
                             "--log-level", "WARNING", *extra], stdout=subprocess.PIPE, env=_common.checkout_env(),
                            text=True)
    line = proc.stdout.readline()
    if " on " not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split(" on ")[1].split()[0]


async def run_clients(url: str, connections: int, seconds: float, clip: np.ndarray) -> list:
    """All sessions at once (capacity_clients' paced client), each from a different offset of the looped clip."""
    need = int(seconds * 10) * BLOCK
    streams = [np.take(clip, np.arange(i * 7919, i * 7919 + need), mode="wrap") for i in range(connections)]
    streams = [(np.clip(s, -1, 32767 / 32768) * 32768).astype("<i2") for s in streams]
    timeout = seconds + 120  # the audio at real time, then two minutes for the last finals
    return await asyncio.gather(*(capacity_clients.run_stream(url + "/native", s, 0.0, 1.0, 0.4, timeout)
                                  for s in streams), return_exceptions=True)


def summarise(results: list, args) -> dict:
    """Per-run figures and pass/fail."""
    ok = [r for r in results if isinstance(r, dict)]
    failures = [repr(r) for r in results if not isinstance(r, dict)]
    latencies = [x for r in ok for x in r["latency"]]
    samples_equal = sum(r["samples_received"] == r["samples_sent"] for r in ok)
    finals_complete = sum(r["finals"] == r["speech_starts"] and r["end_of_stream"] for r in ok)
    clean = sum(r["close_code"] == 1000 for r in ok)
    ms = {q: _common.percentile(latencies, q, digits=1, scale=1000, empty=float("nan")) for q in (50, 95, 100)}
    return {"model": args.model, "serve_args": args.serve_args, "connections": args.connections, "seconds": args.seconds,
            "sessions_ok": len(ok), "failures": failures, "samples_equal": samples_equal,
            "finals_complete": finals_complete, "clean_close": clean, "finals": sum(r["finals"] for r in ok),
            "partials": len(latencies), "errors": sum(r["errors"] for r in ok),
            "partial_latency_ms": {"p50": ms[50], "p95": ms[95], "max": ms[100]},
            "pass": len(ok) == args.connections == samples_equal == finals_complete == clean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per session, sent at real time")
    parser.add_argument("--out", default=str(RESULTS / "load_soak.json"))
    parser.add_argument("--serve-args", default="", help="more flags for the server, e.g. '--context kv_cache'")
    args = parser.parse_args()
    if args.connections < 1 or args.seconds <= 0:
        raise ValueError(f"--connections {args.connections} and --seconds {args.seconds} must be positive")
    proc, url = start_server(_common.model_path(args.model), args.connections, args.serve_args.split())
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
    _common.write_json(args.out, summary)


if __name__ == "__main__":
    main()
