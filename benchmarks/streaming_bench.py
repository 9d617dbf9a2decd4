"""Streaming fidelity, latency, stability and cost on the held-out long recording.

For each window configuration the file is fed in 100 ms blocks on a simulated real-time clock:
block i arrives at (i + 1) * 100 ms, and each feed() starts when its block has arrived and the
previous feed() has finished, taking its measured wall time. An event is emitted when the feed()
that produced it finishes, so latencies include the model's compute time (and queueing when a
configuration is slower than real time). `--clock cpu` charges each feed() the CPU time of the
calling thread instead of its wall time (with `--threads 1`: the compute a free core would spend;
on a shared machine wall time also counts other processes' turns).

    python benchmarks/streaming_bench.py [--model demo] [--minutes 3] [--configs 1000/3000/400 ...]
        [--decoders greedy auto auto:all:next auto:0:10:committed ...] [--per-word]

Per word of the finals: latency from the word's end in the audio to the first partial that
contains it, and to the moment it became stable (p50/p95). Flicker: share of partials that
rewrite (not just extend) the previous hypothesis. WER and CER of streaming finals against the
offline transcription of the same model, and against the reference text; WERgap: the streaming
WER against the reference minus the offline WER of the same decoder kind (greedy, beam, auto),
with a 95 % bootstrap interval over the recording's sentences.
Writes benchmarks/results/streaming.json.
"""

from __future__ import annotations

import argparse
import time

import soundfile

import _common
import heldout
from _common import percentiles, simulate, word_latencies, word_times

RESULTS = _common.RESULTS
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def decoder_options(spec: str, **overrides):
    """DecoderOptions from "KIND[:MARGIN[:GAP[:WHERE]]]": MARGIN = stable_vote_margin (a number, or
    "all": every beam votes), GAP = word_end_gap_frames (an int, or "next": wait for the next word),
    WHERE = where a stable word may end (stable_lookahead_frames): "lookahead" (anywhere in it),
    "committed" (0) or N frames into the lookahead. `overrides`: further DecoderOptions fields."""
    from xlsr_live.decoding import DecoderOptions

    kind, *rest = spec.split(":")
    fields = {}
    if rest:
        fields["stable_vote_margin"] = None if rest[0] == "all" else float(rest[0])
    if len(rest) > 1:
        fields["word_end_gap_frames"] = None if rest[1] == "next" else int(rest[1])
    if len(rest) > 2:
        if rest[2] not in ("lookahead", "committed") and not rest[2].isdigit():
            raise ValueError(f"decoder {spec!r}: WHERE must be 'lookahead', 'committed' or frames, not {rest[2]!r}")
        fields["stable_lookahead_frames"] = {"lookahead": None, "committed": 0}.get(rest[2]) \
            if not rest[2].isdigit() else int(rest[2])
    return DecoderOptions(kind=kind, **fields, **overrides)


def errors_per_sentence(sentences: list[str], hypothesis: str):
    """Word errors of `hypothesis` against the joined `sentences`, attributed to the sentence whose
    reference words they align to (an insertion to the sentence of the next reference word)."""
    import jiwer
    import numpy as np

    counts = np.array([len(s.split()) for s in sentences])
    ends = np.cumsum(counts)
    errors = np.zeros(len(sentences))
    for chunk in jiwer.process_words(" ".join(sentences), hypothesis).alignments[0]:
        if chunk.type == "insert":
            at = min(chunk.ref_start_idx, int(ends[-1]) - 1)
            errors[np.searchsorted(ends, at, side="right")] += chunk.hyp_end_idx - chunk.hyp_start_idx
        elif chunk.type != "equal":
            np.add.at(errors, np.searchsorted(ends, np.arange(chunk.ref_start_idx, chunk.ref_end_idx), side="right"), 1)
    return errors, counts


def gap_interval(sentences: list[str], streamed: str, offline: str, draws: int = 2000) -> list[float]:
    """95 % bootstrap interval (resampling sentences) of streaming WER minus offline WER."""
    import numpy as np

    streamed_errors, counts = errors_per_sentence(sentences, streamed)
    offline_errors, _ = errors_per_sentence(sentences, offline)
    pick = np.random.default_rng(0).integers(0, len(sentences), (draws, len(sentences)))
    gaps = (streamed_errors[pick].sum(1) - offline_errors[pick].sum(1)) / counts[pick].sum(1)
    return [round(float(v), 4) for v in np.percentile(gaps, [2.5, 97.5])]


def run_config(model, audio, spec: str, offline_text: str, reference: str, timer=time.perf_counter,
               decoder: str = "auto", per_word: bool = False, overrides: dict | None = None) -> dict:
    import jiwer

    from xlsr_live.streaming.options import StreamingOptions, WindowOptions

    parts = spec.split("/")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "kv"):
        raise ValueError(f"config {spec!r}: expected chunk/left/lookahead in ms, optionally /kv")
    chunk, left, ahead = (int(v) for v in parts[:3])
    context = "kv_cache" if len(parts) == 4 else "recompute"
    window = WindowOptions(chunk_ms=chunk, left_context_ms=left, lookahead_ms=ahead, context=context)
    options = StreamingOptions(window=window, decoder=decoder_options(decoder, **(overrides or {})))
    emitted, compute = simulate(model, audio, options, timer)
    streamed = " ".join(e.text for _, e in emitted if e.type == "final" and e.text)
    lat = word_latencies(emitted)
    return {"config": spec, "decoder": decoder, "rtf": round(compute / (audio.size / 16_000), 4),
            "streamed_text": streamed,
            "wer_vs_offline": round(jiwer.wer(offline_text, streamed), 4),
            "cer_vs_offline": round(jiwer.cer(offline_text, streamed), 4),
            "wer_vs_reference": round(jiwer.wer(reference, streamed), 4),
            "cer_vs_reference": round(jiwer.cer(reference, streamed), 4),
            "first_partial_latency_s": percentiles(lat["first_partial"]),
            "stable_latency_s": percentiles(lat["stable"]), "flicker_rate": round(lat["flicker_rate"], 3),
            "partials": lat["partials"], "stable_rewrites": lat["stable_rewrites"], "words": len(lat["stable"]),
            **({"per_word": word_rows(emitted)} if per_word else {})}


def word_rows(emitted) -> list[dict]:
    """Per final word: text, audio end (s), delays from it to its first partial and to stable text (s)."""
    return [{"word": r["word"], "end_s": round(r["end"], 3), "first_partial_s": round(r["first_partial"] - r["end"], 3),
             "stable_s": round(r["stable"] - r["end"], 3)} for r in word_times(emitted)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="demo", help=_common.MODEL_HELP)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--configs", nargs="+", default=["1000/3000/400", "500/2000/300", "1000/1000/400",
                                                         "2000/3000/400", "1000/3000/0"],
                        help="chunk/left-context/lookahead in ms; a /kv suffix caches the left context's keys/values")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="time a feed() by wall time or by the calling thread's CPU time")
    parser.add_argument("--decoders", nargs="+", default=["auto"],
                        help='decoder per run: "greedy", "beam" or "auto", optionally ":MARGIN[:GAP[:WHERE]]" '
                             '(stable_vote_margin: a number or "all" for every beam; word_end_gap_frames: an int or '
                             '"next"; stable words may end in the "lookahead" or only in "committed" frames); '
                             'each config runs with each decoder')
    parser.add_argument("--per-word", action="store_true",
                        help="write each final word's delays to first partial and stable text into the JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--beam-width", type=int, default=None,
                        help="beam width of every beam decoder, streaming and offline (default: DecoderOptions')")
    parser.add_argument("--token-min-logp", type=float, default=None,
                        help="labels tried per frame by every beam decoder (default: DecoderOptions')")
    parser.add_argument("--out", default=str(RESULTS / "streaming.json"))
    return parser.parse_args()


def offline_texts(model, audio, decoders, overrides) -> tuple[dict, dict]:
    """Whole-input text and seconds per decoder kind ("auto" always: the WERoff/CERoff reference)."""
    from xlsr_live.offline import transcribe_array

    texts, seconds = {}, {}
    for kind in sorted({spec.split(":")[0] for spec in decoders} | {"auto"}):
        started = time.perf_counter()
        texts[kind] = transcribe_array(model, audio, decoder=decoder_options(kind, **overrides)).text
        seconds[kind] = time.perf_counter() - started
    return texts, seconds


def print_report(report: dict, args: argparse.Namespace) -> None:
    rows, by_kind = report["configs"], report["offline"]["wer_vs_reference_by_decoder"]
    print(f"audio {report['audio_s']} s, model {args.model} ({args.dtype}); offline RTF {report['offline']['rtf']}, "
          f"WER {report['offline']['wer_vs_reference']}, CER {report['offline']['cer_vs_reference']}; "
          f"offline WER per decoder {by_kind}")
    print(f"{'chunk/left/ahead':<18}{'decoder':<11}{'RTF':>7}{'WERoff':>8}{'CERoff':>8}{'WERref':>8}{'CERref':>8}"
          f"{'first p50/p95':>16}{'stable p50/p95':>17}{'flicker':>9}{'rewrites':>9}{'WERgap':>8}{'95% CI':>18}")
    for r in rows:
        fp, sp = r["first_partial_latency_s"], r["stable_latency_s"]
        first = f"{fp['p50']}/{fp['p95']}"
        settled = f"{sp['p50']}/{sp['p95']}"
        print(f"{r['config']:<18}{r['decoder']:<11}{r['rtf']:>7}{r['wer_vs_offline']:>8}{r['cer_vs_offline']:>8}"
              f"{r['wer_vs_reference']:>8}{r['cer_vs_reference']:>8}{first:>16}{settled:>17}{r['flicker_rate']:>9}"
              f"{r['stable_rewrites']:>9}{r['wer_gap_vs_offline_same_decoder']:>8} {str(r['wer_gap_95ci']):>17}")


def main() -> None:
    import jiwer

    from xlsr_live.model import load_model

    args = parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    path, segments = heldout.load(args.minutes)
    audio, _ = soundfile.read(path, dtype="float32")
    model = load_model(_common.model_path(args.model), dtype=args.dtype)
    reference = " ".join(s["text"] for s in segments)
    overrides = {name: value for name, value in (("beam_width", args.beam_width),
                                                  ("token_min_logp", args.token_min_logp)) if value is not None}
    texts, seconds = offline_texts(model, audio, args.decoders, overrides)
    offline, offline_rtf = texts["auto"], seconds["auto"] / (audio.size / 16_000)
    by_kind = {kind: round(jiwer.wer(reference, text), 4) for kind, text in texts.items()
               if any(spec.split(":")[0] == kind for spec in args.decoders)}  # the line each row is held to
    rows = [run_config(model, audio, spec, offline, reference, CLOCKS[args.clock], decoder, args.per_word, overrides)
            for spec in args.configs for decoder in args.decoders]
    sentences = [s["text"] for s in segments]
    for row in rows:
        kind = row["decoder"].split(":")[0]
        row["wer_gap_vs_offline_same_decoder"] = round(row["wer_vs_reference"] - by_kind[kind], 4)
        row["wer_gap_95ci"] = gap_interval(sentences, row.pop("streamed_text"), texts[kind])
    report = {"model": args.model, "dtype": args.dtype, "clock": args.clock, "threads": args.threads,
              "beam_width": args.beam_width, "token_min_logp": args.token_min_logp,
              "audio_s": round(audio.size / 16_000, 1),
              "offline": {"rtf": round(offline_rtf, 4), "wer_vs_reference": round(jiwer.wer(reference, offline), 4),
                          "cer_vs_reference": round(jiwer.cer(reference, offline), 4),
                          "wer_vs_reference_by_decoder": by_kind},
              "configs": rows}
    print_report(report, args)
    _common.write_json(args.out, report)

if __name__ == "__main__":
    main()
