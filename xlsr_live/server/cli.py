"""`xlsr-live serve`: argument parser and entry point (the model, window and decoding flags are
the shared ones of xlsr_live/cli/options.py)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import logging
import os
import signal
from typing import Optional, Sequence

from ..cli.options import add_logging_arguments, add_recognizer_arguments, configure_logging, log_level
from ..cli.options import recognizer_options
from .options import PROTOCOLS, ServerOptions, available_memory_bytes, stream_budget

log = logging.getLogger(__name__)
HELP = "serve live recognition: native, vosk and OpenAI-compatible websockets and HTTP on one port"
TOKEN_ENV = "XLSR_LIVE_TOKEN"
M_ARENA_MAX = -8  # glibc mallopt() parameter (malloc.h)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the serve options to `parser` (a subcommand parser or a fresh one)."""
    defaults = ServerOptions()
    add_recognizer_arguments(parser)
    net = parser.add_argument_group("network")
    net.add_argument("--host", default=defaults.host, help=f"interface to bind (default: {defaults.host})")
    net.add_argument("--port", type=int, default=defaults.port, help=f"TCP port (default: {defaults.port})")
    net.add_argument("--protocol", choices=PROTOCOLS, default=defaults.protocol,
                     help="protocol on every path but /native and /vosk (default: native)")
    net.add_argument("--tls-cert", help="PEM certificate: serve wss:// (needs --tls-key)")
    net.add_argument("--tls-key", help="PEM private key for --tls-cert")
    net.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                     help=f"require this bearer token (header or ?token=); default ${TOKEN_ENV}")
    net.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                     help="browser Origin allowed to connect (repeat; default: any)")
    batch = parser.add_argument_group("batching")
    batch.add_argument("--no-batching", action="store_true", help="run every window alone (benchmarks)")
    batch.add_argument("--max-batch", type=int, default=defaults.max_batch, help="windows per forward pass")
    batch.add_argument("--workers", type=int, default=None,
                       help="batches in flight at once (default: 1 on a GPU; on a CPU one per core, up to 4)")
    batch.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                       help="longest wait for a batch to fill after its first window")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-connections", type=int, default=defaults.max_connections)
    limits.add_argument("--busy-wait-ms", type=float, default=defaults.busy_wait_ms,
                        help="refuse new sessions (503) while windows wait longer than this for the model"
                             f" (0: never; default: {defaults.busy_wait_ms:g})")
    limits.add_argument("--max-connections-per-address", type=int, default=defaults.max_connections_per_address,
                        help="per client IP (0: no limit, e.g. behind a proxy)")
    limits.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    limits.add_argument("--max-upload-bytes", type=int, default=defaults.max_upload_bytes,
                        help="largest POST /v1/audio/transcriptions request (413 beyond)")
    limits.add_argument("--send-timeout", type=float, default=defaults.send_timeout_s,
                        help="seconds a client may leave a message unread before it is disconnected (4003)")
    limits.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s, help="seconds (0: none)")
    limits.add_argument("--session-timeout", type=float, default=defaults.session_timeout_s, help="seconds")
    add_logging_arguments(parser, default="INFO")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser for `xlsr-live serve`."""
    return add_arguments(argparse.ArgumentParser(prog="xlsr-live serve", description=HELP))


def default_workers(device: str) -> int:
    """Batches in flight: 1 on a GPU; on a CPU one per core, at most 4 (measured best on 2 cores)."""
    return 1 if not str(device).startswith("cpu") else max(1, min(4, os.cpu_count() or 1))


def server_options(args: argparse.Namespace) -> ServerOptions:
    """ServerOptions from parsed arguments (ValueError names a bad one)."""
    from ..defaults import resolve_device

    workers = args.workers if args.workers is not None else default_workers(resolve_device(args.device))
    return ServerOptions(workers=workers,
        host=args.host, port=args.port, protocol=args.protocol, batching=not args.no_batching,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_connections=args.max_connections,
        busy_wait_ms=args.busy_wait_ms,
        max_connections_per_address=args.max_connections_per_address, send_timeout_s=args.send_timeout,
        max_message_bytes=args.max_message_bytes, idle_timeout_s=args.idle_timeout,
        session_timeout_s=args.session_timeout, token=args.token or None,
        allowed_origins=tuple(args.allowed_origin), tls_cert=args.tls_cert, tls_key=args.tls_key,
        model_name=os.path.basename(str(args.model).rstrip("/")) or "xlsr-live", max_upload_bytes=args.max_upload_bytes)


async def serve_until_signal(engine, options: ServerOptions, ready: Optional[asyncio.Future] = None) -> None:
    """Serve until SIGTERM/SIGINT, then give every session its final result and close cleanly."""
    from .app import SpeechServer

    loop = asyncio.get_running_loop()
    server = SpeechServer(engine, options)
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"xlsr-live: serving on {server.url} (browser page at {server.url.replace('ws', 'http', 1)}/)",
          flush=True)
    if ready is not None:
        ready.set_result(server)
    try:
        await stop.wait()
        log.info("signal received: finishing %d open sessions", server.active_sessions)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.shutdown()


def admit_by_memory(options: ServerOptions, recognizer, device: str) -> ServerOptions:
    """Lower max_connections to the streams whose state fits in memory (admission control: 503 beyond)."""
    per_stream = recognizer.stream_state_bytes()
    budget = stream_budget(per_stream, available_memory_bytes(device))
    if budget is None:
        log.warning("available memory unknown: no memory-based stream limit")
        return options
    log.info("admission: state %.1f MB per stream, memory for %d streams; serving at most %d",
             per_stream / 2**20, budget, min(budget, options.max_connections))
    if budget >= options.max_connections:
        return options
    return dataclasses.replace(options, max_connections=budget)


def limit_malloc_arenas(count: int) -> bool:
    """Let the server's threads share at most `count` glibc malloc arenas (default: one per thread,
    up to 8 per core), so that buffers one thread freed (batches, beam searches) serve the next
    instead of each arena keeping its own peak: measured 1.7 instead of 2.8 MB of RSS per extra
    session (docs/performance.md). Not where MALLOC_ARENA_MAX is set (it wins) or malloc is not
    glibc's (False then). Call it before the process starts threads."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, count))


def run(args: argparse.Namespace) -> int:
    """Load the model once and serve; returns the exit status (logging is configured by the caller)."""
    from ..defaults import load_recognizer, resolve_device
    from .engine import ModelEngine

    options = server_options(args)
    if limit_malloc_arenas(max(2, options.workers)):
        log.info("malloc arenas: at most %d (MALLOC_ARENA_MAX overrides)", max(2, options.workers))
    recognizer_args = recognizer_options(args)
    device = resolve_device(recognizer_args.device)
    if recognizer_args.threads is None and device.startswith("cpu"):  # each worker its share of the cores
        recognizer_args = dataclasses.replace(recognizer_args, threads=max(1, (os.cpu_count() or 1) // options.workers))
    recognizer = load_recognizer(recognizer_args)
    options = admit_by_memory(options, recognizer, device)
    engine = ModelEngine(recognizer.model, recognizer.streaming, info=recognizer.describe())
    asyncio.run(serve_until_signal(engine, options))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: `python -m xlsr_live.server.cli ...`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(log_level(args))
    try:
        return run(args)
    except ValueError as exc:
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
