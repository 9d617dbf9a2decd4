"""xlsr_live.server: websocket service (native and vosk-server protocols), micro-batching, metrics.

In code: `async with SpeechServer(ModelEngine(load_model(...)), ServerOptions(port=0)) as server: ...`
(see xlsr_live.server.app and docs/protocol.md).
"""
