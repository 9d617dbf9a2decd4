"""Start-up latency (issue 6 target 5): from the command to the first partial on a file.

Runs `xlsr-live transcribe FILE --stream --format jsonl --model MODEL` as a subprocess (by default
`python -m xlsr_live.cli` of this checkout; --command xlsr-live runs the installed console script)
and takes the wall time from just before the process is spawned to the moment its first `partial`
line arrives on stdout; the process is then stopped (SIGTERM). Median of --runs. Also measured,
as floors: `python -c "import torch"` and `python -c "import xlsr_live.cli"`.

    python benchmarks/startup.py [--model demo] [--runs 5] [--file talk.wav] [--pause-training]

FILE defaults to the first 10 s of the held-out recording (benchmarks/heldout.py), whose first
utterance starts at 0.5 s: the first partial needs 1.4 s of its audio (chunk + lookahead) and
then one window of compute. Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import ROOT, TRAINING, checkout_env, paused


def first_partial_seconds(command: list[str]) -> float:
    """Wall seconds from spawning `command` to its first JSON line of type partial."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=checkout_env(), cwd=ROOT)
    try:
        for line in proc.stdout:
            if json.loads(line).get("type") == "partial":
                return time.perf_counter() - started
        raise RuntimeError(f"{command} ended without a partial (status {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait()


def exit_seconds(code: str) -> float:
    """Wall seconds of `python -c CODE` (an import floor)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=checkout_env(), cwd=ROOT)
    return time.perf_counter() - started


def default_file(seconds: float = 10.0) -> Path:
    """The first `seconds` of the held-out recording as a temporary WAV file."""
    import heldout
    import soundfile

    audio, rate = soundfile.read(heldout.load(3.0)[0], dtype="int16")
    path = Path(tempfile.gettempdir()) / f"xlsr_live_startup_{seconds:g}s.wav"
    soundfile.write(path, audio[: int(seconds * rate)], rate)
    return path


def measure(args) -> dict:
    """All timings, each the median of `args.runs`."""
    path = Path(args.file) if args.file else default_file()
    base = [sys.executable, "-m", "xlsr_live.cli"] if args.command == "module" else [args.command]
    command = base + ["transcribe", str(path), "--stream", "--format", "jsonl",
                      "--model", _common.model_path(args.model)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    first_partial_seconds(command)  # warm the page cache (model file, torch libraries)
    runs = {"first_partial": [first_partial_seconds(command) for _ in range(args.runs)],
            "import_torch": [exit_seconds("import torch") for _ in range(args.runs)],
            "import_cli": [exit_seconds("import xlsr_live.cli") for _ in range(args.runs)]}
    return {"command": " ".join(command), "runs": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
            "median_s": {k: round(statistics.median(vs), 3) for k, vs in runs.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--file", default=None, help="audio file (default: 10 s of the held-out recording)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="pass --threads N to the command")
    parser.add_argument("--command", default="module", help="'module' (python -m xlsr_live.cli) or a path")
    parser.add_argument("--pause-training", action="store_true", help=f"SIGSTOP '{TRAINING}' while measuring")
    parser.add_argument("--out", default=str(_common.RESULTS / "startup.json"))
    args = parser.parse_args(argv)
    with paused(args.pause_training):
        report = measure(args)
    report.update(model=args.model, loadavg_1m_after=round(os.getloadavg()[0], 2))
    for name, value in report["median_s"].items():
        print(f"{name:<15}{value:>8.3f} s   runs {report['runs'][name]}")
    _common.write_json(args.out, report)


if __name__ == "__main__":
    main()
