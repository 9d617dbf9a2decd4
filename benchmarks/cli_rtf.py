"""Whole-process offline speed of `xlsr-live transcribe` on the held-out recording, on quiet cores
and with other busy processes, per decoder and OpenMP wait policy.

Each run is a fresh `xlsr-live transcribe` process (start-up, model and LM loading included); the
real-time factor is its wall time over the audio's duration. `--busy N` starts N pure-Python busy
loops, each in its own session (so `nice` does not hide them from the measured process: the kernel
shares CPU between sessions first), as another program on the machine would.

    python benchmarks/cli_rtf.py --minutes 15 --decoders auto greedy --busy 0 1 --policies cli ACTIVE
    # -> benchmarks/results/cli_rtf.json

Policy "cli" leaves OMP_WAIT_POLICY and GOMP_SPINCOUNT unset (the command's own default applies);
"NAME=VALUE" exports that variable; any other value is exported as OMP_WAIT_POLICY. A decoder
"KIND:WIDTH" (e.g. auto:16) passes `--beam-width WIDTH`; plain "auto" keeps the command's default.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

import _common

import soundfile


@contextlib.contextmanager
def busy_loops(n: int):
    """n CPU-bound processes in their own sessions for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
             for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def one_run(wav: str, decoder: str, policy: str, model: str) -> dict:
    """Wall and CPU seconds of one transcribe process."""
    env = _common.checkout_env()
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    if "=" in policy:
        name, _, value = policy.partition("=")
        env[name] = value
    elif policy != "cli":
        env["OMP_WAIT_POLICY"] = policy
    kind, _, width = decoder.partition(":")
    cmd = [sys.executable, "-m", "xlsr_live.cli", "transcribe", "--model", model, "--decoder", kind,
           *(["--beam-width", width] if width else []), "--format", "text", wav]
    before = os.times()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = os.times()
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "words": len(out.stdout.split())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--minutes", type=int, default=15, help="held-out recording (benchmarks/heldout.py)")
    ap.add_argument("--decoders", nargs="+", default=["auto", "greedy"])
    ap.add_argument("--busy", nargs="+", type=int, default=[0, 1], help="busy processes during the runs")
    ap.add_argument("--policies", nargs="+", default=["cli"], help="'cli' (the command's default) or a value")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pause-training", action="store_true", help="SIGSTOP the demo training while measuring")
    ap.add_argument("--out", default=str(_common.RESULTS / "cli_rtf.json"))
    args = ap.parse_args(argv)

    import heldout

    wav = str(heldout.load(args.minutes)[0])
    audio_s = soundfile.info(wav).duration
    rows = []
    with _common.paused(args.pause_training):
        for busy in args.busy:
            with busy_loops(busy):
                for policy in args.policies:
                    for decoder in args.decoders:
                        runs = [one_run(wav, decoder, policy, args.model) for _ in range(args.repeat)]
                        wall = statistics.median(r["wall_s"] for r in runs)
                        rows.append({"busy": busy, "policy": policy, "decoder": decoder, "runs": runs,
                                     "median_wall_s": wall, "rtf": round(wall / audio_s, 4)})
                        print(f"busy {busy} policy {policy:8s} decoder {decoder:8s} wall median {wall:7.2f} s "
                              f"RTF {wall / audio_s:.4f} ({', '.join(str(r['wall_s']) for r in runs)})", flush=True)
    _common.write_json(args.out, {"audio": wav, "audio_s": audio_s, "model": args.model, "rows": rows,
                                  "machine": _common.machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
