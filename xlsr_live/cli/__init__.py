"""The `xlsr-live` command: transcribe files (offline or streaming), caption a microphone, serve.

One module per command (transcribe.py, mic.py; serve and client live with the server and the
client); the model, window and decoding flags and logging are defined once in options.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from .options import add_logging_arguments, configure_logging, log_level


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of every subcommand."""
    from ..client import cli as client_cli
    from ..server import cli as serve_cli
    from . import mic, transcribe

    parser = argparse.ArgumentParser(prog="xlsr-live", description=__doc__.split("\n", 1)[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings (INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    transcribe.add_arguments(commands.add_parser("transcribe", help=transcribe.HELP))
    mic.add_arguments(commands.add_parser("mic", help=mic.HELP))
    serve_cli.add_arguments(commands.add_parser("serve", help=serve_cli.HELP))
    client = commands.add_parser("client", help=client_cli.HELP)
    client_cli.add_arguments(client)
    add_logging_arguments(client)
    return parser


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from ..client import cli as client_cli
    from ..server import cli as serve_cli
    from . import mic, transcribe

    return {"transcribe": transcribe.run, "mic": mic.run, "serve": serve_cli.run, "client": client_cli.run}


def passive_openmp_waits() -> None:
    """Let torch's OpenMP threads sleep instead of spin while they wait, unless the user chose.

    libgomp spins a waiting thread for a while by default. On 2 cores with one other busy process,
    `transcribe` of a 6-minute file then took 29.9 s instead of 7.5 s (greedy); on quiet cores the
    passive policy cost about 1.5 s greedy and nothing measurable with beam + LM
    (docs/performance.md, session 7). Only takes effect before torch loads, which the commands do
    after parsing their arguments.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `xlsr-live` console command."""
    passive_openmp_waits()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(log_level(args))
    from ..model import CheckpointError, ModelNotFoundError, UnsupportedModelError

    try:
        return _commands()[args.command](args)
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
