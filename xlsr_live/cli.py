"""The `xlsr-live` command: transcribe files (offline or streaming), caption a microphone, serve."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Callable, Sequence

log = logging.getLogger("xlsr_live")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo",
                        help="checkpoint directory, hub id (needs the 'hub' extra), or 'demo' (default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--dtype", default="float32",
                        choices=["float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "int8"],
                        help="weights/activations; int8 = dynamic int8 linear layers on CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="xlsr-live", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    commands = parser.add_subparsers(dest="command", required=True)

    transcribe = commands.add_parser("transcribe", help="transcribe audio files")
    transcribe.add_argument("files", nargs="+", metavar="FILE")
    _add_model_args(transcribe)
    transcribe.add_argument("--format", default="text", choices=["text", "json", "srt", "vtt", "jsonl"],
                            help="output format (jsonl: streaming events, with --stream)")
    transcribe.add_argument("--chunk-ms", type=int, default=20_000, help="offline window length")
    transcribe.add_argument("--stride-ms", type=int, nargs=2, default=(2_000, 2_000),
                            metavar=("LEFT", "RIGHT"), help="offline window strides dropped per side")
    transcribe.add_argument("--stream", action="store_true", help="run the streaming engine over the file")
    transcribe.add_argument("--realtime", action="store_true", help="with --stream: pace input at real time")

    mic = commands.add_parser("mic", help="live captions from the microphone")
    _add_model_args(mic)
    mic.add_argument("--input-device", default=None, help="PortAudio input device name or index")
    mic.add_argument("--sample-rate", type=int, default=16_000, help="capture rate (resampled to 16 kHz)")
    mic.add_argument("--format", default="text", choices=["text", "jsonl"])
    mic.add_argument("--seconds", type=float, default=None, help="stop after this much audio")

    from .client import cli as client_cli
    from .server import cli as serve_cli

    serve_cli.add_arguments(commands.add_parser("serve", help=serve_cli.HELP))
    client_cli.add_arguments(commands.add_parser("client", help=client_cli.HELP))
    return parser


def _configure_torch(threads: int | None) -> None:
    if threads is not None:
        from .model import set_threads

        set_threads(threads)


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
        from .constants import SAMPLE_RATE

        with Progress(transient=True) as progress:
            task = progress.add_task(label, total=total_seconds)
            yield lambda samples: progress.advance(task, samples / SAMPLE_RATE)

    return bar()


def _print_transcript(path: str, result, fmt: str, many: bool) -> None:
    from .formats import subtitles, transcript_json

    if fmt == "json":
        print(transcript_json(path, result.text, result.words, result.duration), flush=True)
        return
    if many:
        print(f"==> {path} <==")
    if fmt == "text":
        print(result.text, flush=True)
    else:
        print(subtitles(result.words, fmt), flush=True)


def run_transcribe(args: argparse.Namespace) -> int:
    """Transcribe each file; a file that fails is reported and the others still run."""
    from .audio import AudioError, audio_info_seconds
    from .model import load_model
    from .offline import OfflineOptions, transcribe_file

    if args.format == "jsonl" and not args.stream:
        raise ValueError("--format jsonl prints streaming events: add --stream")
    options = OfflineOptions(args.chunk_ms, args.stride_ms[0], args.stride_ms[1])
    _configure_torch(args.threads)
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    failures = 0
    for path in args.files:
        try:
            if args.stream:
                _stream_one(model, path, args)
                continue
            try:
                seconds = audio_info_seconds(path)
            except Exception:  # unreadable: transcribe_file reports it precisely
                seconds = 0.0
            with _progress(seconds, path) as progress:
                result = transcribe_file(model, path, options, progress)
            _print_transcript(path, result, args.format, len(args.files) > 1)
        except AudioError as exc:
            failures += 1
            print(f"xlsr-live: error: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _stream_one(model, path: str, args: argparse.Namespace) -> None:
    """Run the streaming engine over one file and print its events live (captions or JSON lines)."""
    from .client.captions import CaptionPrinter
    from .file_stream import stream_file
    from .streaming.events import event_to_dict

    if args.format not in ("text", "jsonl"):
        raise ValueError(f"--format {args.format} with --stream: use text or jsonl")
    printer = CaptionPrinter(sys.stdout, args.format, label=path if len(args.files) > 1 else None)
    try:
        for event in stream_file(model, path, realtime=args.realtime):
            printer.event(event_to_dict(event))
    finally:
        printer.close()


def run_mic(args: argparse.Namespace) -> int:
    """Caption the microphone until Ctrl-C; PortAudio problems are one-line errors."""
    from .client.live import caption_microphone
    from .client.microphone import BLOCK_MS, MicrophoneError
    from .model import load_model
    from .streaming.options import StreamingOptions

    _configure_torch(args.threads)
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    device = int(args.input_device) if args.input_device and args.input_device.isdigit() else args.input_device
    max_blocks = None if args.seconds is None else max(1, int(args.seconds * 1000 / BLOCK_MS))
    try:
        caption_microphone(model, StreamingOptions(), args.sample_rate, device, args.format, max_blocks=max_blocks)
    except MicrophoneError as exc:
        print(f"xlsr-live: error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve recognition over websockets until SIGTERM / Ctrl-C."""
    from .server import cli as serve_cli

    return serve_cli.run(args)


def run_client(args: argparse.Namespace) -> int:
    """Stream files or the microphone to a server."""
    from .client import cli as client_cli

    return client_cli.run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "transcribe": run_transcribe, "mic": run_mic, "serve": run_serve, "client": run_client}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `xlsr-live` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .model import CheckpointError, ModelNotFoundError, UnsupportedModelError

    try:
        return COMMANDS[args.command](args)
    except (CheckpointError, ModelNotFoundError, UnsupportedModelError, ValueError) as exc:
        print(f"xlsr-live: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
