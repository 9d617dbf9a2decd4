"""`xlsr-live serve`: argument parser and entry point (wired into xlsr_live/cli.py by the lead).

    from xlsr_live.server import cli as serve_cli
    serve_cli.add_arguments(subparsers.add_parser("serve", help=serve_cli.HELP))
    ... serve_cli.run(args)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
from typing import Optional, Sequence

from .options import PROTOCOLS, ServerOptions

log = logging.getLogger(__name__)
HELP = "serve live recognition: native, vosk and OpenAI-compatible websockets and HTTP on one port"
TOKEN_ENV = "XLSR_LIVE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the serve options to `parser` (a subcommand parser or a fresh one)."""
    defaults = ServerOptions()
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="demo", help="checkpoint directory, hub id or 'demo' (default: demo)")
    model.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    model.add_argument("--dtype", default="float32",
                       help="float32, float16, bfloat16 or int8 (dynamic, CPU) (default: float32)")
    model.add_argument("--chunk-ms", type=int, default=None, help="committed audio per window (engine default)")
    model.add_argument("--left-context-ms", type=int, default=None, help="left context per window (engine default)")
    model.add_argument("--context", choices=("recompute", "kv_cache"), default=None,
                       help="recompute the left context (exact) or cache its keys/values (faster, approximate)")
    model.add_argument("--lm", default=None, metavar="ARPA_OR_BIN", help="KenLM model: beam search with an LM")
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
    batch.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default on a CPU: cores / workers)")
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
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser for `xlsr-live serve`."""
    return add_arguments(argparse.ArgumentParser(prog="xlsr-live serve", description=HELP))


def default_workers(device: str) -> int:
    """Batches in flight: 1 on a GPU; on a CPU one per core, at most 4 (measured best on 2 cores)."""
    return 1 if not str(device).startswith("cpu") else max(1, min(4, os.cpu_count() or 1))


def server_options(args: argparse.Namespace) -> ServerOptions:
    """ServerOptions from parsed arguments (ValueError names a bad one)."""
    workers = args.workers if args.workers is not None else default_workers(args.device)
    return ServerOptions(workers=workers,
        host=args.host, port=args.port, protocol=args.protocol, batching=not args.no_batching,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_connections=args.max_connections,
        busy_wait_ms=args.busy_wait_ms,
        max_connections_per_address=args.max_connections_per_address, send_timeout_s=args.send_timeout,
        max_message_bytes=args.max_message_bytes, idle_timeout_s=args.idle_timeout,
        session_timeout_s=args.session_timeout, token=args.token or None,
        allowed_origins=tuple(args.allowed_origin), tls_cert=args.tls_cert, tls_key=args.tls_key,
        model_name=os.path.basename(str(args.model).rstrip("/")) or "xlsr-live", max_upload_bytes=args.max_upload_bytes)


def streaming_options(args: argparse.Namespace):
    """The engine's StreamingOptions with the command line's changes."""
    from ..decoding import DecoderOptions
    from ..streaming.options import StreamingOptions

    options = StreamingOptions()
    window = {name: value for name, value in (("chunk_ms", args.chunk_ms), ("left_context_ms", args.left_context_ms),
                                               ("context", args.context)) if value is not None}
    if window:
        options = dataclasses.replace(options, window=dataclasses.replace(options.window, **window))
    if args.lm is not None:
        options = dataclasses.replace(options, decoder=DecoderOptions(kind="beam", kenlm_path=args.lm))
    return options


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


def run(args: argparse.Namespace) -> int:
    """Load the model once and serve; returns the exit status."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..model import load_model, set_threads
    from .engine import ModelEngine

    options = server_options(args)
    threads = args.threads
    if threads is None and str(args.device).startswith("cpu"):
        threads = max(1, (os.cpu_count() or 1) // options.workers)  # each worker its share of the cores
    if threads is not None:
        set_threads(threads)
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    asyncio.run(serve_until_signal(ModelEngine(model, streaming_options(args)), options))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: `python -m xlsr_live.server.cli ...`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
