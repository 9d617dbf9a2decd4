"""`xlsr-live mic`: live captions from the microphone with the local engine."""

from __future__ import annotations

import argparse
import sys

from .options import add_logging_arguments, add_recognizer_arguments, recognizer_options

HELP = "live captions from the microphone"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Capture device, rate, output and the shared recognizer options."""
    parser.add_argument("--input-device", default=None, help="PortAudio input device name or index")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="capture rate (resampled to 16 kHz)")
    parser.add_argument("--format", default="text", choices=["text", "jsonl"])
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much audio")
    add_recognizer_arguments(parser)
    add_logging_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Caption the microphone until Ctrl-C; PortAudio problems are one-line errors."""
    from ..client.live import caption_microphone
    from ..client.microphone import BLOCK_MS, MicrophoneError
    from ..defaults import load_recognizer

    setup = load_recognizer(recognizer_options(args))
    device = int(args.input_device) if args.input_device and args.input_device.isdigit() else args.input_device
    max_blocks = None if args.seconds is None else max(1, int(args.seconds * 1000 / BLOCK_MS))
    try:
        caption_microphone(setup.model, setup.streaming, args.sample_rate, device, args.format, max_blocks=max_blocks)
    except MicrophoneError as exc:
        print(f"xlsr-live: error: {exc}", file=sys.stderr)
        return 1
    return 0
