"""`xlsr-live client`: stream files or the microphone to a server, print partials and finals live."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from typing import TYPE_CHECKING, Optional, Sequence, TextIO

from .captions import CaptionPrinter

if TYPE_CHECKING:  # numpy and websockets load only when the client runs (fast `xlsr-live` start-up)
    from .stream import StreamResult

log = logging.getLogger(__name__)
HELP = "stream audio files or the microphone to an xlsr-live server"


def file_blocks(path: str, speed: float):
    """100 ms int16 blocks of a file at 16 kHz, paced at `speed` x real time."""
    from ..audio import iter_audio_blocks
    from .stream import paced, split_blocks

    def blocks():
        for big in iter_audio_blocks(path, block_seconds=10.0):
            yield from split_blocks(big, 16_000, 100)

    return paced(blocks(), 16_000, speed)


async def mic_blocks(sample_rate: int, device: Optional[str], stop: asyncio.Event):
    """Microphone blocks (int16 mono) until `stop` is set; needs the `mic` extra."""
    from .microphone import microphone

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def deliver(block):  # PortAudio's thread
        loop.call_soon_threadsafe(queue.put_nowait, block)

    stopper = asyncio.ensure_future(stop.wait())
    with microphone(sample_rate, device, on_block=deliver):
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            yield getter.result()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the client options to `parser`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("files", nargs="*", default=[], metavar="FILE", help="audio files (any libsndfile format)")
    source.add_argument("--mic", action="store_true", help="stream the microphone until Ctrl-C")
    parser.add_argument("--url", default="ws://127.0.0.1:2700/native", help="server URL (native protocol)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="pace files at this multiple of real time; 0: as fast as possible")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format")
    parser.add_argument("--no-partials", action="store_true", help="ask for finals only")
    parser.add_argument("--hotword", action="append", default=[], help="boost a word (repeat)")
    parser.add_argument("--token", help="bearer token for the server")
    parser.add_argument("--reconnect", action="store_true",
                        help="when the server goes away (close 1001/1006/1012/1013), reconnect and resend the "
                             "audio it did not confirm (e.g. to another replica behind a load balancer)")
    parser.add_argument("--mic-device", help="sounddevice input device (name or index)")
    parser.add_argument("--mic-rate", type=int, default=16_000, help="microphone sample rate (default 16000)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser for `xlsr-live client`."""
    return add_arguments(argparse.ArgumentParser(prog="xlsr-live client", description=HELP))


async def stream_all(args: argparse.Namespace, out: TextIO) -> list[StreamResult]:
    """Stream every file (one stream each, in order) or the microphone."""
    from .resume import recognize_resuming
    from .stream import ClientOptions, recognize

    async def one(url, blocks, options, on_message):
        if not getattr(args, "reconnect", False):
            return await recognize(url, blocks, options, on_message)
        return (await recognize_resuming(url, blocks, options, on_message))[-1]  # how the stream ended

    base = ClientOptions(partials=not args.no_partials, hotwords=tuple(args.hotword), token=args.token)
    if args.mic:
        stop = asyncio.Event()
        options = dataclasses.replace(base, sample_rate=args.mic_rate)
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGINT, stop.set)
        return [await one(args.url, mic_blocks(args.mic_rate, args.mic_device, stop), options,
                                CaptionPrinter(out, args.format, timestamps=True).event)]
    results = []
    for path in args.files:
        label = path if len(args.files) > 1 or args.format == "jsonl" else None
        if args.format == "text" and len(args.files) > 1:
            out.write(f"== {path}\n")
        results.append(await one(args.url, file_blocks(path, args.speed), base,
                                       CaptionPrinter(out, args.format, label=label, timestamps=True).event))
    return results


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run the client; exit status 1 if the server reported an error or closed abnormally."""
    from websockets.exceptions import InvalidHandshake

    from .microphone import MicrophoneError

    try:
        results = asyncio.run(stream_all(args, out or sys.stdout))
    except (OSError, InvalidHandshake, ValueError, MicrophoneError) as exc:  # refused, unreachable, unreadable audio
        log.error("%s", exc)
        return 1
    failed = [r for r in results if r.of_type("error") or r.close_code not in (1000, 1001)]
    for result in failed:
        log.error("stream ended with close code %s %s", result.close_code, result.close_reason)
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: `python -m xlsr_live.client.cli ...`."""
    from ..cli.options import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging("INFO")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
