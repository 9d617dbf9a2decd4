"""Memory per stream (issue 6 target 6): at most 2 MB of state per stream beyond the model.

Loads the model once, warms it up with one throw-away stream, then creates N recognizers and
feeds each a different cut of the held-out recording that stops in the middle of an utterance
(the state is largest there: utterance audio, cached conv features, decoder), driving them
through the server's split API (push / next_job / run_jobs / complete). Two measurements:

* `state`: bytes of numpy arrays, torch tensor storages and Python objects reachable from one
  recognizer, not counting the shared model (exact; excludes C-side state of webrtcvad / soxr);
* `rss`: growth of the process's resident set size over the N streams, divided by N (includes
  allocator overhead, the C-side state, and one-off growth of oneDNN / allocator caches for the
  larger batch shapes); `rss_freed`: what dropping the N recognizers gives back, divided by N
  (the per-stream share of RSS).

    python benchmarks/memory.py [--model demo] [--streams 64] [--seconds 12]

Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import _common
from _common import release_free_memory, rss_bytes, state_bytes

SAMPLE_RATE = _common.SAMPLE_RATE


def drive(model, recognizers: list, clips: list[np.ndarray], block: int = 1600) -> None:
    """Feed every clip to its recognizer in 100 ms blocks, batching ready windows like the server."""
    from xlsr_live.streaming.windows import run_jobs

    longest = max(c.size for c in clips)
    for start in range(0, longest, block):
        for rec, clip in zip(recognizers, clips):
            if start < clip.size:
                rec.push(clip[start:start + block])
        while True:
            jobs = [(rec, job) for rec in recognizers if (job := rec.next_job()) is not None]
            if not jobs:
                break
            for (rec, job), logits in zip(jobs, run_jobs(model, [job for _, job in jobs])):
                rec.complete(job, logits)


def mid_utterance_clips(audio: np.ndarray, segments: list[dict], count: int, seconds: float) -> list[np.ndarray]:
    """`count` clips of about `seconds`, each ending half-way through a held-out sentence."""
    clips = []
    for index in range(count):
        segment = segments[(index * 7) % len(segments)]
        end = int((segment["start"] + segment["end"]) / 2 * SAMPLE_RATE)
        clips.append(audio[max(0, end - int(seconds * SAMPLE_RATE)):end])
    return clips


def measure(model, clips: list[np.ndarray], options=None) -> dict:
    """RSS growth per stream and exact reachable state of the recognizers, after warming up."""
    from xlsr_live.streaming.options import StreamingOptions
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    options = options or StreamingOptions()
    drive(model, [StreamingRecognizer(model, options)], [np.concatenate(clips[:4])])  # warm-up: weights, kernels
    release_free_memory()
    before = rss_bytes()
    recognizers = [StreamingRecognizer(model, options) for _ in clips]
    drive(model, recognizers, clips)
    release_free_memory()
    with_streams = rss_bytes()
    shared = (model, model.model, model.vocab, model.config)
    states = [state_bytes(rec, shared) for rec in recognizers]
    open_utterances = sum(bool(rec._utterances) for rec in recognizers)  # noqa: SLF001 - benchmark check
    mean = {k: int(np.mean([s[k] for s in states])) for k in states[0]}
    del recognizers
    release_free_memory()
    after = rss_bytes()
    return {"streams": len(clips), "open_utterances": open_utterances,
            "rss_per_stream_bytes": (with_streams - before) // len(clips),
            "rss_freed_per_stream_bytes": (with_streams - after) // len(clips), "state_mean_bytes": mean,
            "state_max_bytes": max(s["total"] for s in states)}


def main(argv=None) -> None:
    import soundfile

    import heldout
    from xlsr_live.model import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0, help="audio fed per stream")
    parser.add_argument("--defaults", action="store_true",
                        help="xlsr-live's automatic defaults (CPU: int8, kv_cache, default windows) instead of "
                             "the engine's exact StreamingOptions()")
    parser.add_argument("--out", default=str(_common.RESULTS / "memory.json"))
    args = parser.parse_args(argv)
    wav, segments = heldout.load(3.0)
    audio, _ = soundfile.read(wav, dtype="float32")
    release_free_memory()
    baseline = rss_bytes()
    options, estimate = None, None
    if args.defaults:
        from xlsr_live.defaults import RecognizerOptions, load_recognizer

        setup = load_recognizer(RecognizerOptions(model=_common.model_path(args.model), device="cpu"))
        model, options, estimate = setup.model, setup.streaming, setup.stream_state_bytes()
    else:
        model = load_model(_common.model_path(args.model))
    model_rss = rss_bytes() - baseline
    report = {"model": args.model, "defaults": args.defaults, "model_rss_bytes": model_rss,
              "model_parameter_bytes": sum(p.numel() * p.element_size() for p in model.model.parameters()),
              "server_estimate_bytes": estimate,
              **measure(model, mid_utterance_clips(audio, segments, args.streams, args.seconds), options)}
    mb = 1 / 2**20
    print(f"model {args.model}: parameters {report['model_parameter_bytes'] * mb:.1f} MiB, "
          f"RSS on load {model_rss * mb:.1f} MiB")
    print(f"{report['streams']} streams ({report['open_utterances']} mid-utterance): RSS growth "
          f"{report['rss_per_stream_bytes'] * mb:.2f} MiB/stream, freed when dropped "
          f"{report['rss_freed_per_stream_bytes'] * mb:.2f} MiB/stream; reachable state mean "
          f"{report['state_mean_bytes']['total'] * mb:.2f} MiB (numpy {report['state_mean_bytes']['numpy'] * mb:.2f}, "
          f"torch {report['state_mean_bytes']['torch'] * mb:.2f}, "
          f"python {report['state_mean_bytes']['python'] * mb:.2f}),"
          f" max {report['state_max_bytes'] * mb:.2f} MiB")
    if estimate is not None:
        print(f"server's per-stream estimate (admission control): {estimate * mb:.2f} MiB")
    _common.write_json(args.out, report)


if __name__ == "__main__":
    main()
