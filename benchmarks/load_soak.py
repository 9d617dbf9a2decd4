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

Server memory: this process reads the server's VmRSS and VmHWM from /proc/PID/status every
`--rss-interval` seconds from start-up to exit: `idle` (median before the clients connect),
`steady` (median over the second half of the audio, every session streaming), `peak` (VmHWM at
the end) and `after` (median once every session has closed). Several `--connections` values run
one fresh server each and fit RSS against sessions by least squares: the slope is the memory per
extra session (MB = 10^6 bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
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


class RssSampler:
    """Samples a process's VmRSS (KiB) on a thread; `mark(name)` notes the time of a phase change."""

    def __init__(self, pid: int, interval_s: float):
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []  # (monotonic time, VmRSS KiB)
        self.marks: dict[str, float] = {}
        self.hwm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            memory = _common.proc_memory_kib(self.pid)
            if "VmRSS" in memory:
                self.samples.append((time.monotonic(), memory["VmRSS"]))
                self.hwm_kib = max(self.hwm_kib, memory.get("VmHWM", 0))
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def median_mb(self, begin: float, end: float) -> float:
        """Median VmRSS over [begin, end) in MB (NaN without samples there)."""
        values = [kib for when, kib in self.samples if begin <= when < end]
        return round(float(np.median(values)) * 1024 / 1e6, 2) if values else float("nan")

    def summary(self) -> dict:
        """idle / steady / peak / after in MB, the number of samples and the sampling interval."""
        m = self.marks
        half = (m["clients"] + m["audio_end"]) / 2
        return {"idle_mb": self.median_mb(0.0, m["clients"]), "steady_mb": self.median_mb(half, m["audio_end"]),
                "peak_mb": round(self.hwm_kib * 1024 / 1e6, 2), "after_mb": self.median_mb(m["done"], float("inf")),
                "samples": len(self.samples), "interval_s": self.interval_s}


async def run_clients(url: str, connections: int, seconds: float, clip: np.ndarray) -> list:
    """All sessions at once (capacity_clients' paced client), each from a different offset of the looped clip."""
    need = int(seconds * 10) * BLOCK
    streams = [np.take(clip, np.arange(i * 7919, i * 7919 + need), mode="wrap") for i in range(connections)]
    streams = [(np.clip(s, -1, 32767 / 32768) * 32768).astype("<i2") for s in streams]
    timeout = seconds + 120  # the audio at real time, then two minutes for the last finals
    return await asyncio.gather(*(capacity_clients.run_stream(url + "/native", s, 0.0, 1.0, 0.4, timeout)
                                  for s in streams), return_exceptions=True)


def summarise(results: list, model: str, serve_args: str, connections: int, seconds: float) -> dict:
    """Per-run figures and pass/fail."""
    ok = [r for r in results if isinstance(r, dict)]
    failures = [repr(r) for r in results if not isinstance(r, dict)]
    latencies = [x for r in ok for x in r["latency"]]
    samples_equal = sum(r["samples_received"] == r["samples_sent"] for r in ok)
    finals_complete = sum(r["finals"] == r["speech_starts"] and r["end_of_stream"] for r in ok)
    clean = sum(r["close_code"] == 1000 for r in ok)
    ms = {q: _common.percentile(latencies, q, digits=1, scale=1000, empty=float("nan")) for q in (50, 95, 100)}
    return {"model": model, "serve_args": serve_args, "connections": connections, "seconds": seconds,
            "sessions_ok": len(ok), "failures": failures, "samples_equal": samples_equal,
            "finals_complete": finals_complete, "clean_close": clean, "finals": sum(r["finals"] for r in ok),
            "partials": len(latencies), "errors": sum(r["errors"] for r in ok),
            "partial_latency_ms": {"p50": ms[50], "p95": ms[95], "max": ms[100]},
            "pass": len(ok) == connections == samples_equal == finals_complete == clean}


def soak(args, connections: int, clip: np.ndarray) -> dict:
    """One fresh server, `connections` paced sessions; the summary with the server's memory."""
    proc, url = start_server(_common.model_path(args.model), connections, args.serve_args.split())
    sampler = RssSampler(proc.pid, args.rss_interval).start()
    try:
        time.sleep(args.settle_s)  # idle memory after start-up, before any session
        sampler.mark("clients")
        started = time.perf_counter()
        results = asyncio.run(run_clients(url, connections, args.seconds, clip))
        wall = time.perf_counter() - started
        sampler.mark("done")
        sampler.marks["audio_end"] = sampler.marks["clients"] + args.seconds
        time.sleep(args.settle_s)  # memory once every session has closed
    finally:
        sampler.stop()
        proc.terminate()
        proc.wait(30)
    summary = summarise(results, args.model, args.serve_args, connections, args.seconds)
    return dict(summary, wall_s=round(wall, 1), server_memory=sampler.summary())


def fit_per_session(runs: list[dict], key: str) -> dict:
    """Least-squares line of server memory `key` (MB) against sessions: slope = MB per extra session."""
    x = np.array([run["connections"] for run in runs], dtype=float)
    y = np.array([run["server_memory"][key] for run in runs], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return {"mb_per_session": round(float(slope), 3), "mib_per_session": round(float(slope) * 1e6 / 2**20, 3),
            "intercept_mb": round(float(intercept), 1), "max_residual_mb": round(float(np.abs(residual).max()), 2)}


def print_runs(runs: list[dict]) -> None:
    """One table row per run: checks, partial latency, server memory."""
    print("| model | connections | s each | sessions ok | samples equal | finals complete | clean close | finals "
          "| partials | p50 ms | p95 ms | max ms | idle MB | steady MB | peak MB | after MB |")
    print("|" + "---|" * 16)
    for run in runs:
        lat, mem = run["partial_latency_ms"], run["server_memory"]
        print(f"| {run['model']} | {run['connections']} | {run['seconds']:g} | {run['sessions_ok']} | "
              f"{run['samples_equal']} | {run['finals_complete']} | {run['clean_close']} | {run['finals']} | "
              f"{run['partials']} | {lat['p50']} | {lat['p95']} | {lat['max']} | {mem['idle_mb']} | "
              f"{mem['steady_mb']} | {mem['peak_mb']} | {mem['after_mb']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--connections", type=int, nargs="+", default=[64],
                        help="sessions; several values: one server each and RSS fitted against sessions")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per session, sent at real time")
    parser.add_argument("--out", default=str(RESULTS / "load_soak.json"))
    parser.add_argument("--serve-args", default="", help="more flags for the server, e.g. '--context kv_cache'")
    parser.add_argument("--rss-interval", type=float, default=0.25, help="seconds between server RSS samples")
    parser.add_argument("--settle-s", type=float, default=2.0, help="idle seconds sampled before and after the clients")
    args = parser.parse_args()
    if min(args.connections) < 1 or args.seconds <= 0 or args.rss_interval <= 0 or args.settle_s < 0:
        raise ValueError(f"--connections {args.connections}, --seconds {args.seconds}, --rss-interval "
                         f"{args.rss_interval} must be positive and --settle-s {args.settle_s} not negative")
    clip = loop_audio()
    runs = [soak(args, connections, clip) for connections in args.connections]
    print_runs(runs)
    for run in runs:
        print("PASS" if run["pass"] else f"FAIL ({run['connections']} sessions): {run['failures'][:3]}")
    if len(runs) == 1:
        _common.write_json(args.out, runs[0])
        return
    fits = {key: fit_per_session(runs, key) for key in ("steady_mb", "peak_mb")}
    for key, fit in fits.items():
        print(f"server {key[:-3]} RSS per extra session: {fit['mb_per_session']} MB ({fit['mib_per_session']} MiB), "
              f"least squares over {args.connections}, largest residual {fit['max_residual_mb']} MB")
    _common.write_json(args.out, {"runs": runs, "rss_fit": fits, "pass": all(run["pass"] for run in runs)})


if __name__ == "__main__":
    main()
