"""Command-line options shared by every command: model, window and decoding flags, logging.

Defined once here and added to `transcribe`, `mic` and `serve`; parsed into
`xlsr_live.defaults.RecognizerOptions`, which validates them the same way for every command and
for the Python API (ValueError naming the bad value).
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional

from ..decoding.options import OFFLINE_BEAM_WIDTH, STREAMING_BEAM_WIDTH
from ..defaults import (DECODERS, DEFAULT_CHUNK_MS, DEFAULT_LEFT_CONTEXT_MS, DEFAULT_LOOKAHEAD_MS, DTYPE_NAMES,
                        SMALL_MODEL_CHUNK_MS, SMALL_MODEL_LOOKAHEAD_MS, RecognizerOptions)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_recognizer_arguments(parser: argparse.ArgumentParser) -> None:
    """--model --device --dtype --exact --chunk-ms --left-context-ms --lookahead-ms --context
    --decoder --beam-width --lm --hotword --language --threads."""
    defaults = RecognizerOptions()
    model = parser.add_argument_group("model, window and decoding (defaults: the measured fast path)")
    model.add_argument("--model", default=defaults.model,
                       help="checkpoint directory, hub id (needs the 'hub' extra), or 'demo' (default)")
    model.add_argument("--device", default=defaults.device, help="auto (default: CUDA if present), cpu, cuda, cuda:N")
    model.add_argument("--dtype", default=None, type=str.lower, choices=sorted(DTYPE_NAMES),
                       help="default: int8 (dynamic) on CPU, bf16 (fp16 without bf16) on CUDA; float32 with --exact")
    model.add_argument("--exact", action="store_true",
                       help="reference mode: float32 and the left context recomputed for every window (slow)")
    model.add_argument("--chunk-ms", type=int, default=defaults.chunk_ms,
                       help=f"audio committed per window (default: {SMALL_MODEL_CHUNK_MS} for models up to base "
                            f"size with the cached context, else {DEFAULT_CHUNK_MS})")
    model.add_argument("--left-context-ms", type=int, default=defaults.left_context_ms,
                       help=f"left context per window (default: {DEFAULT_LEFT_CONTEXT_MS})")
    model.add_argument("--lookahead-ms", type=int, default=defaults.lookahead_ms,
                       help=f"right context per window (default: {SMALL_MODEL_LOOKAHEAD_MS} for models up to "
                            f"base size with the cached context, else {DEFAULT_LOOKAHEAD_MS})")
    model.add_argument("--context", choices=("recompute", "kv_cache"), default=None,
                       help="left context: kv_cache (default for XLSR-kind models) or recompute (exact)")
    model.add_argument("--decoder", choices=DECODERS, default=None,
                       help="default: beam with --lm or --hotword, else auto (beam with the checkpoint's "
                            "language_model/ folder, greedy without)")
    model.add_argument("--beam-width", type=int, default=defaults.beam_width,
                       help=f"beam search width (default: {STREAMING_BEAM_WIDTH} streaming, {OFFLINE_BEAM_WIDTH} "
                            "for a whole file)")
    model.add_argument("--lm", default=None, metavar="ARPA_OR_BIN", help="KenLM model: beam search with an LM")
    model.add_argument("--hotword", action="append", default=[], metavar="WORD", help="boost a word (repeat)")
    model.add_argument("--language", default=None, help="MMS adapter language (e.g. fra), for MMS checkpoints")
    model.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def recognizer_options(args: argparse.Namespace) -> RecognizerOptions:
    """RecognizerOptions from parsed arguments; ValueError names a bad value."""
    return RecognizerOptions(
        model=args.model, device=args.device, dtype=args.dtype, exact=args.exact, chunk_ms=args.chunk_ms,
        left_context_ms=args.left_context_ms, lookahead_ms=args.lookahead_ms, context=args.context,
        decoder=args.decoder, beam_width=args.beam_width, lm=args.lm, hotwords=tuple(args.hotword),
        language=args.language, threads=args.threads)


def add_logging_arguments(parser: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    """--log-level; `default` None leaves the choice to `log_level` (WARNING, or INFO with -v)."""
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=default,
                        help=f"logging level (default: {default or 'WARNING, INFO with -v'})")


def log_level(args: argparse.Namespace) -> str:
    """The level asked for: --log-level, else INFO with -v/--verbose, else WARNING."""
    chosen = getattr(args, "log_level", None)
    if chosen:
        return chosen
    return "INFO" if getattr(args, "verbose", False) else "WARNING"


def configure_logging(level: str) -> None:
    """Configure the root logger once per process, from the command line."""
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)
