"""Pictures of streaming behaviour (needs the `plot` extra: matplotlib).

1. docs/img/stream_timeline.png: one stream of the held-out recording on the benchmarks' simulated
   real-time clock (_common.simulate): the waveform, the VAD / utterance segments (SpeechStart ..
   SpeechEnd), and for every word of the finals its audio span and the moments its first partial,
   its stable commit and its final were emitted (so the horizontal distance from the end of the
   word's bar to a marker is that latency).
2. docs/img/chunk_latency.png: first-partial and stable latency (p50, p95) and real-time factor
   against the chunk size (left context 3000 ms, lookahead 400 ms).

    python benchmarks/plots.py [--model demo] [--seconds 20] [--chunks 240 500 1000 1500 2000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile

import _common
import heldout
from _common import percentiles, simulate, word_latencies, word_times

IMG = _common.ROOT / "docs" / "img"
RATE = _common.SAMPLE_RATE


def segments(emitted) -> list[tuple[float, float]]:
    """(start, end) of every utterance from SpeechStart / SpeechEnd events."""
    spans, start = [], None
    for _, event in emitted:
        if event.type == "speech_start":
            start = event.time
        elif event.type == "speech_end" and start is not None:
            spans.append((start, event.time))
            start = None
    return spans


def plot_timeline(audio: np.ndarray, emitted, path: Path, title: str, reference: list[dict] = ()) -> None:
    """Waveform + utterances (+ reference sentences) on top, word spans and their emission markers below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = word_times(emitted)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 7.5), sharex=True, height_ratios=(1, 2.4))
    t = np.arange(audio.size) / RATE
    top.plot(t, audio, lw=0.4, color="0.35")
    for start, end in segments(emitted):
        top.axvspan(start, end, color="tab:green", alpha=0.18, lw=0)
    for index, sentence in enumerate(s for s in reference if s["start"] < audio.size / RATE):
        width = int(max(sentence["end"] - sentence["start"], 1.0) * 9)  # about 9 characters per second
        text = sentence["text"] if len(sentence["text"]) <= width else sentence["text"][:width - 1] + "…"
        top.text(sentence["start"], 1.02 + 0.09 * (index % 2), text, transform=top.get_xaxis_transform(),
                 fontsize=6.5, va="bottom", color="0.25")
    top.set_ylabel("waveform")
    top.set_title(title + "  (green: utterances, SpeechStart..SpeechEnd)", fontsize=10, pad=22)
    for row, w in enumerate(words):
        y = -row
        bottom.plot([w["start"], w["end"]], [y, y], color="0.6", lw=5, solid_capstyle="butt")
        bottom.plot([w["end"], w["final"]], [y, y], color="0.8", lw=0.8)
        bottom.plot(w["first_partial"], y, "o", color="tab:blue", ms=5)
        bottom.plot(w["stable"], y, "^", color="tab:orange", ms=6)
        bottom.plot(w["final"], y, "s", color="tab:red", ms=4)
        bottom.text(w["start"] - 0.1, y, w["word"], ha="right", va="center", fontsize=7)
    handles = [plt.Line2D([], [], color="0.6", lw=5, label="word in the audio"),
               plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="first partial"),
               plt.Line2D([], [], marker="^", ls="", color="tab:orange", label="stable"),
               plt.Line2D([], [], marker="s", ls="", color="tab:red", label="final")]
    bottom.legend(handles=handles, loc="upper right", fontsize=8)
    bottom.set_yticks([])
    bottom.set_xlabel("stream time (s): audio position, and emission time on the simulated real-time clock")
    bottom.set_ylabel("words of the finals")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chunk_sweep(model, audio: np.ndarray, chunks: list[int]) -> list[dict]:
    """Latency percentiles and RTF of the streaming engine for each chunk size (ms)."""
    from xlsr_live.streaming.options import StreamingOptions, WindowOptions

    rows = []
    for chunk in chunks:
        options = StreamingOptions(window=WindowOptions(chunk_ms=chunk, left_context_ms=3000, lookahead_ms=400))
        emitted, compute = simulate(model, audio, options)
        lat = word_latencies(emitted)
        rows.append({"chunk_ms": chunk, "rtf": compute / (audio.size / RATE),
                     "first_partial": percentiles(lat["first_partial"]),
                     "stable": percentiles(lat["stable"])})
    return rows


def plot_chunks(rows: list[dict], path: Path, title: str) -> None:
    """Latency (left axis) and RTF (right axis) against chunk size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["chunk_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for key, color in (("first_partial", "tab:blue"), ("stable", "tab:orange")):
        ax.plot(x, [r[key]["p50"] for r in rows], "o-", color=color, label=f"{key.replace('_', ' ')} p50")
        ax.plot(x, [r[key]["p95"] for r in rows], "o--", color=color, label=f"{key.replace('_', ' ')} p95")
    ax.set_xlabel("chunk (ms); left context 3000 ms, lookahead 400 ms")
    ax.set_ylabel("latency after the word's end (s)")
    ax.grid(alpha=0.3)
    rtf = ax.twinx()
    rtf.plot(x, [r["rtf"] for r in rows], "s-", color="tab:green", label="real-time factor")
    rtf.set_ylabel("real-time factor (compute / audio)", color="tab:green")
    rtf.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    extra = rtf.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    from xlsr_live.model import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio in the timeline")
    parser.add_argument("--sweep-seconds", type=float, default=60.0, help="audio per chunk size")
    parser.add_argument("--chunks", type=int, nargs="+", default=[240, 500, 1000, 1500, 2000])
    parser.add_argument("--label", default=None, help="model name in the titles (default: --model)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    label = args.label or args.model
    wav, reference = heldout.load(3.0)
    audio, _ = soundfile.read(wav, dtype="float32")
    model = load_model(_common.model_path(args.model))
    clip = audio[: int(args.seconds * RATE)]
    emitted, _ = simulate(model, clip, _default_options())
    plot_timeline(clip, emitted, IMG / "stream_timeline.png", f"one stream, model {label}, chunk 1000 ms", reference)
    rows = chunk_sweep(model, audio[: int(args.sweep_seconds * RATE)], args.chunks)
    plot_chunks(rows, IMG / "chunk_latency.png", f"model {label}, {args.sweep_seconds:g} s of held-out audio")
    print(json.dumps(rows, indent=1))


def _default_options():
    from xlsr_live.streaming.options import StreamingOptions

    return StreamingOptions()


if __name__ == "__main__":
    main()
