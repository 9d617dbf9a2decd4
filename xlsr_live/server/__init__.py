"""xlsr_live.server: websocket service (native and vosk-server protocols), micro-batching, metrics.

CLI wiring (xlsr_live/cli.py): `from xlsr_live.server import cli as serve_cli`,
`serve_cli.add_arguments(subparsers.add_parser("serve", help=serve_cli.HELP))`, then `serve_cli.run(args)`.
In code: `async with SpeechServer(ModelEngine(load_model(...)), ServerOptions(port=0)) as server: ...`
(see xlsr_live.server.app and docs/protocol.md).
"""
