"""`xlsr-live transcribe`: audio files to text, subtitles or JSON, offline or through the streaming engine."""

from __future__ import annotations

import argparse
import contextlib
import sys

from .options import add_logging_arguments, add_recognizer_arguments, recognizer_options

HELP = "transcribe audio files"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Files, output format, offline window and the shared recognizer options."""
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--format", default="text", choices=["text", "json", "srt", "vtt", "jsonl"],
                        help="output format (jsonl: streaming events, with --stream)")
    parser.add_argument("--stream", action="store_true", help="run the streaming engine over the file")
    parser.add_argument("--realtime", action="store_true", help="with --stream: pace input at real time")
    offline = parser.add_argument_group("offline windows (without --stream)")
    offline.add_argument("--window-ms", type=int, default=20_000, help="offline window length (default: 20000)")
    offline.add_argument("--stride-ms", type=int, nargs=2, default=(2_000, 2_000), metavar=("LEFT", "RIGHT"),
                         help="offline window strides dropped per side (default: 2000 2000)")
    add_recognizer_arguments(parser)
    add_logging_arguments(parser)
    return parser


def _progress(total_seconds: float, label: str):
    """A rich progress bar on a terminal for long files, else a no-op callback."""
    if not sys.stderr.isatty() or total_seconds < 30:
        return contextlib.nullcontext(None)
    try:
        from rich.progress import Progress
    except ImportError:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from ..constants import SAMPLE_RATE

        with Progress(transient=True) as progress:
            task = progress.add_task(label, total=total_seconds)
            yield lambda samples: progress.advance(task, samples / SAMPLE_RATE)

    return bar()


def _print_transcript(path: str, result, fmt: str, many: bool) -> None:
    from ..formats import subtitles, transcript_json

    if fmt == "json":
        print(transcript_json(path, result.text, result.words, result.duration), flush=True)
        return
    if many:
        print(f"==> {path} <==")
    if fmt == "text":
        print(result.text, flush=True)
    else:
        print(subtitles(result.words, fmt), flush=True)


def run(args: argparse.Namespace) -> int:
    """Transcribe each file; a file that fails is reported and the others still run."""
    from ..defaults import load_recognizer
    from ..offline import OfflineOptions, transcribe_file
    from ..audio import AudioError, audio_info_seconds
    from ..decoding import BeamSearches

    if args.format == "jsonl" and not args.stream:
        raise ValueError("--format jsonl prints streaming events: add --stream")
    if args.stream and args.format not in ("text", "jsonl"):
        raise ValueError(f"--format {args.format} with --stream: use text or jsonl")
    offline = OfflineOptions(args.window_ms, args.stride_ms[0], args.stride_ms[1])
    setup = load_recognizer(recognizer_options(args))
    beam_searches = BeamSearches()  # one beam search (and loaded LM) for every file
    failures = 0
    for path in args.files:
        try:
            if args.stream:
                _stream_one(setup, path, args)
                continue
            try:
                seconds = audio_info_seconds(path)
            except Exception:  # unreadable: transcribe_file reports it precisely
                seconds = 0.0
            with _progress(seconds, path) as progress:
                result = transcribe_file(setup.model, path, offline, progress, setup.streaming.decoder, beam_searches)
            _print_transcript(path, result, args.format, len(args.files) > 1)
        except AudioError as exc:
            failures += 1
            print(f"xlsr-live: error: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _stream_one(setup, path: str, args: argparse.Namespace) -> None:
    """Run the streaming engine over one file and print its events live (captions or JSON lines)."""
    from ..client.captions import CaptionPrinter
    from ..streaming.events import event_to_dict
    from ..file_stream import stream_file

    printer = CaptionPrinter(sys.stdout, args.format, label=path if len(args.files) > 1 else None)
    try:
        for event in stream_file(setup.model, path, setup.streaming, realtime=args.realtime):
            printer.event(event_to_dict(event))
    finally:
        printer.close()
