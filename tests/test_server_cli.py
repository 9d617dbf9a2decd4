"""The serve and client command lines: a file streamed by the client, SIGTERM on a real server."""

import asyncio
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from websockets.asyncio.client import connect

from needs import require_tool
from server_fake import RATE, run_server, speak
from xlsr_live.audio import iter_audio_blocks
from xlsr_live.client import cli as client_cli
from xlsr_live.client.captions import CaptionPrinter
from xlsr_live.client.stream import encode, split_blocks
from xlsr_live.server import cli as serve_cli
from xlsr_live.server.engine import ModelEngine
from xlsr_live.streaming.recognizer import StreamingRecognizer

@pytest.fixture(autouse=True)
def espeak():
    """Every test here streams synthetic speech: skip without espeak-ng (fail under CI)."""
    return require_tool("espeak-ng", "no synthetic speech to stream")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """A WAV file (22.05 kHz) of two spoken phrases with a pause between them."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    audio = np.concatenate([speak("the client streams a file"), np.zeros(RATE, np.int16), speak("and prints")])
    soundfile.write(str(path), audio, RATE, subtype="PCM_16")
    return path


def test_serve_parser_builds_server_options():
    """Command-line flags become ServerOptions; bad values are refused with their name."""
    args = serve_cli.build_parser().parse_args(
        ["--port", "0", "--protocol", "vosk", "--no-batching", "--allowed-origin", "http://a", "--token", "t"])
    options = serve_cli.server_options(args)
    assert (options.port, options.protocol, options.batching, options.allowed_origins, options.token) == (
        0, "vosk", False, ("http://a",), "t")
    with pytest.raises(ValueError, match="max_batch=0"):
        serve_cli.server_options(serve_cli.build_parser().parse_args(["--max-batch", "0"]))
    assert options.workers == serve_cli.default_workers("cpu") == max(1, min(4, os.cpu_count()))
    assert serve_cli.server_options(serve_cli.build_parser().parse_args(["--device", "cuda"])).workers == 1
    assert serve_cli.server_options(serve_cli.build_parser().parse_args(["--workers", "3"])).workers == 3
    with pytest.raises(ValueError, match="busy_wait_ms=-1"):
        serve_cli.server_options(serve_cli.build_parser().parse_args(["--busy-wait-ms", "-1"]))


def test_serve_parser_window_flags_reach_streaming_options():
    """--chunk-ms, --left-context-ms and --context change only the engine's window options."""
    from xlsr_live.defaults import DEFAULT_CHUNK_MS, DEFAULT_LOOKAHEAD_MS

    args = serve_cli.build_parser().parse_args(["--left-context-ms", "1000", "--context", "kv_cache"])
    options = serve_cli.recognizer_options(args)
    window = options.window_options(options.context)
    assert (window.chunk_ms, window.left_context_ms, window.lookahead_ms, window.context) == (
        DEFAULT_CHUNK_MS, 1000, DEFAULT_LOOKAHEAD_MS, "kv_cache")
    with pytest.raises(ValueError, match="left_context_ms"):
        serve_cli.recognizer_options(serve_cli.build_parser().parse_args(["--left-context-ms", "1001"]))


def test_client_cli_streams_file_and_prints_jsonl(tiny_model, speech_wav):
    """`xlsr-live client FILE --format jsonl` prints the engine's finals for that file."""
    recognizer = StreamingRecognizer(tiny_model)
    events = []
    for big in iter_audio_blocks(speech_wav, block_seconds=10.0):
        for block in split_blocks(big, 16_000, 100):
            events += recognizer.feed(np.frombuffer(encode(block, "pcm_s16le"), "<i2"))
    want = [e.text for e in events + recognizer.flush() if e.type == "final"]

    async def client(server):
        out = io.StringIO()
        args = client_cli.build_parser().parse_args([str(speech_wav), "--url", server.url, "--speed", "0",
                                                     "--format", "jsonl"])
        await client_cli.stream_all(args, out)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    lines = run_server(ModelEngine(tiny_model), client)
    assert [m["text"] for m in lines if m["type"] == "final"] == want
    assert lines[0]["type"] == "ready" and lines[-1]["type"] == "end_of_stream"
    assert all(m["file"] == str(speech_wav) for m in lines)


def test_client_text_format_prints_finals():
    """Text output (not a terminal) prints one timed line per final and errors."""
    out = io.StringIO()
    printer = CaptionPrinter(out, "text", live=False, timestamps=True).event
    printer({"type": "partial", "stable": "a", "unstable": " b"})
    printer({"type": "final", "text": "a b", "start": 0.5, "end": 1.25, "words": []})
    printer({"type": "error", "code": "bad_audio", "message": "odd"})
    assert out.getvalue() == "[   0.50 -    1.25] a b\nerror bad_audio: odd\n"


def test_sigterm_finishes_open_sessions_then_exits(tiny_model_dir):
    """SIGTERM: an open session gets its final and end_of_stream, close 1001, exit status 0."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "xlsr_live.server.cli", "--model", str(tiny_model_dir),
                             "--port", "0", "--log-level", "WARNING"], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        audio = np.concatenate([speak("stop the server now please"), np.zeros(RATE // 2, np.int16)])

        async def client():
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
                assert json.loads(await ws.recv())["type"] == "ready"
                await ws.send(audio.tobytes())
                first = json.loads(await ws.recv())  # the server is working on this stream
                proc.send_signal(signal.SIGTERM)
                messages = [first] + [json.loads(m) async for m in ws]
                return messages, ws.close_code

        messages, code = asyncio.run(asyncio.wait_for(client(), 60))
        assert code == 1001
        assert [m["type"] for m in messages][-2:] == ["final", "end_of_stream"]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class FakeInputStream:
    """Stands in for sounddevice.InputStream: plays given blocks through the callback on a thread."""

    blocks: list = []

    def __init__(self, samplerate, channels, dtype, device, blocksize, callback):
        self.callback = callback
        self.thread = None

    def __enter__(self):
        import threading

        def play():
            for block in self.blocks:
                self.callback(block[:, None], len(block), None, None)

        self.thread = threading.Thread(target=play)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join()


def test_mic_blocks_yield_captured_audio_until_stopped(monkeypatch):
    """Microphone blocks arrive in order from the capture thread and stop when asked."""
    import types

    FakeInputStream.blocks = [np.full(1600, i, np.int16) for i in range(5)]
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=FakeInputStream))

    async def capture():
        stop, got = asyncio.Event(), []
        async for block in client_cli.mic_blocks(16_000, None, stop):
            got.append(int(block[0]))
            if len(got) == 5:
                stop.set()
        return got

    assert asyncio.run(capture()) == [0, 1, 2, 3, 4]


def test_malloc_arenas_limited_unless_malloc_arena_max_is_set(monkeypatch):
    """The server caps glibc's malloc arenas (mallopt accepts it), but not where MALLOC_ARENA_MAX is set."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert serve_cli.limit_malloc_arenas(8) is True  # 8: glibc's own limit for one core, harmless here
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert serve_cli.limit_malloc_arenas(2) is False
