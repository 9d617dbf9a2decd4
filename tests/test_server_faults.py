"""Faults: clients that vanish, stop reading or send too fast, a model that throws, slow shutdown."""

import asyncio
import base64
import gc
import json
import os
import socket
import threading
import weakref

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from server_fake import FakeEngine, FakeRecognizer, drain, level_audio, run_server
from xlsr_live.client.stream import recognize
from xlsr_live.server.engine import ModelEngine
from xlsr_live.streaming.events import Partial

START = json.dumps({"type": "start"})


class TrackingEngine:
    """Wraps an engine and keeps weak references to every recognizer it made."""

    def __init__(self, engine):
        self.engine, self.made = engine, []

    def create(self, options):
        recognizer = self.engine.create(options)
        self.made.append(weakref.ref(recognizer))
        return recognizer

    def run_jobs(self, jobs):
        return self.engine.run_jobs(jobs)


@pytest.mark.parametrize("path", ["/native", "/vosk"])
def test_disconnect_mid_utterance_frees_the_session(tiny_model, path):
    """Clients that vanish mid-utterance leave no session, recognizer or address slot behind."""
    engine = TrackingEngine(ModelEngine(tiny_model))
    noise = (8000 * np.random.default_rng(0).standard_normal(16_000 * 2)).astype(np.int16)

    async def one_client(server):
        ws = await connect(server.url + path)
        if path == "/native":
            await ws.send(START)
        else:
            await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        for block in np.split(noise, 10):
            await ws.send(block.tobytes())
        first = json.loads(await ws.recv())
        while path == "/native" and first["type"] != "partial":  # mid-utterance: a partial has come
            first = json.loads(await ws.recv())
        ws.transport.abort()  # vanish without a close handshake
        await asyncio.wait_for(server.wait_active(0), 20)

    async def client(server):
        for _ in range(5):
            await one_client(server)
        gc.collect()
        alive = sum(ref() is not None for ref in engine.made)
        async with connect(server.url + "/native") as ws:  # the per-address slot (limit 1) was freed too
            await ws.send(START)
            ready = json.loads(await ws.recv())["type"]
        await asyncio.wait_for(server.wait_active(0), 20)
        return alive, ready, server.ctx.metrics.active_sessions

    alive, ready, active = run_server(engine, client, max_connections_per_address=1)
    assert (len(engine.made), alive, ready, active) == (6, 0, "ready", 0)


class BigPartialRecognizer(FakeRecognizer):
    """FakeRecognizer whose partials carry `size` bytes of padding (to fill socket buffers fast)."""

    def __init__(self, sample_rate, size):
        super().__init__(sample_rate)
        self.size = size

    def complete(self, job, logits):
        return [Partial(e.stable, e.unstable + " " * self.size, e.start, e.end) if isinstance(e, Partial) else e
                for e in super().complete(job, logits)]


class BigPartialEngine(FakeEngine):
    """A FakeEngine making BigPartialRecognizers."""

    def __init__(self, size=64 * 1024):
        super().__init__()
        self.size = size

    def create(self, options):
        super().create(options)
        return BigPartialRecognizer(options.sample_rate, self.size)


def small_buffer_socket(url):
    """A TCP socket to the server of `url` with a tiny receive buffer (a client that reads slowly)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


class RawClient:
    """A websocket client on a bare socket that never reads after the handshake (no library reader)."""

    def __init__(self, sock):
        self.sock, self.loop = sock, asyncio.get_running_loop()

    @classmethod
    async def connect(cls, url):
        """Handshake on a small-buffer socket; returns the client."""
        client = cls(small_buffer_socket(url))
        host = url.split("//")[1]
        key = base64.b64encode(os.urandom(16)).decode()
        await client.loop.sock_sendall(client.sock, (
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += await client.loop.sock_recv(client.sock, 1)  # byte by byte: nothing past the headers
        assert reply.startswith(b"HTTP/1.1 101"), reply
        return client

    async def send(self, data):
        """One masked text (str) or binary (bytes) frame."""
        opcode = Opcode.TEXT if isinstance(data, str) else Opcode.BINARY
        payload = data.encode() if isinstance(data, str) else data
        await self.loop.sock_sendall(self.sock, Frame(opcode, payload).serialize(mask=True))

    def close(self):
        """Drop the socket."""
        self.sock.close()


def test_slow_reader_loses_stale_partials_never_finals():
    """A client that does not read for a while gets every final later; stale partials were dropped."""
    windows = 400  # 80 utterances: 400 partials of 64 KiB (25 MiB) and 80 finals
    audio = level_audio([7] * windows)

    async def client(server):
        slow = await connect(server.url, sock=small_buffer_socket(server.url), max_queue=1)
        await slow.send(START)

        async def send_all():
            for block in np.split(audio, windows // 4):
                await slow.send(block.tobytes())
            await slow.send(json.dumps({"type": "end"}))

        sender = asyncio.ensure_future(send_all())
        other = await asyncio.wait_for(recognize(server.url, [level_audio([3] * 10)]), 20)
        messages = await asyncio.wait_for(drain(slow), 60)  # now it reads
        await asyncio.wait_for(sender, 10)
        return other, messages, slow.close_code, server.ctx.metrics.dropped_partials_total

    other, messages, code, dropped = run_server(BigPartialEngine(), client)
    assert [m["text"] for m in other.of_type("final")] == ["w3 w3 w3 w3 w3"] * 2  # the other session was served
    finals = [m for m in messages if m["type"] == "final"]
    partials = [m for m in messages if m["type"] == "partial"]
    assert len(finals) == windows // 5 and all(f["text"] == "w7 w7 w7 w7 w7" for f in finals)
    assert messages[-1]["type"] == "end_of_stream" and messages[-1]["samples"] == audio.size and code == 1000
    produced = windows - windows // 5  # 4 partials per 5-window utterance; the other session made 8 more
    assert len(partials) < produced and produced <= len(partials) + dropped <= produced + 8


def test_client_that_never_reads_is_disconnected():
    """A client that stops reading entirely is closed after send_timeout_s; its slot is freed."""
    audio = level_audio([7] * 100)

    async def client(server):
        ws = await RawClient.connect(server.url)
        await ws.send(START)

        async def send_all():
            for block in np.split(audio, 25):
                await ws.send(block.tobytes())

        sender = asyncio.ensure_future(send_all())
        await asyncio.wait_for(server.wait_active(0), 20)
        sender.cancel()
        ws.close()
        return server.ctx.metrics.active_sessions

    assert run_server(BigPartialEngine(size=1 << 20), client, send_timeout_s=0.5) == 0


class GatedEngine(FakeEngine):
    """A FakeEngine whose forward passes wait for `gate` (a model slower than the client)."""

    def __init__(self):
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def run_jobs(self, jobs):
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return super().run_jobs(jobs)


def test_fast_sender_is_throttled_not_buffered():
    """Audio faster than the model is not read ahead: one message is in the engine while the rest waits."""
    engine = GatedEngine()
    messages = 100  # 10 s of audio, sent as fast as possible
    audio = level_audio([2] * messages)

    async def client(server):
        async with connect(server.url) as ws:
            await ws.send(START)
            sent, enough = [0], asyncio.Event()

            async def send_all():
                for block in np.split(audio, messages):
                    await ws.send(block.tobytes())
                    sent[0] += 1
                    if sent[0] == 40:
                        enough.set()
                await ws.send(json.dumps({"type": "end"}))

            sender = asyncio.ensure_future(send_all())
            await asyncio.to_thread(engine.entered.wait, 10)
            await asyncio.wait_for(enough.wait(), 10)  # the client has sent 4 s of audio ...
            read_while_blocked = server.ctx.metrics.audio_seconds  # ... the server has taken 0.1 s of it
            engine.gate.set()
            replies = await drain(ws)
            await sender
            return read_while_blocked, replies

    read_while_blocked, replies = run_server(engine, client, receive_queue=2)
    assert read_while_blocked == pytest.approx(0.1)
    assert replies[-1]["type"] == "end_of_stream" and replies[-1]["samples"] == audio.size
    assert len([m for m in replies if m["type"] == "final"]) == messages // 5


class PoisonEngine(FakeEngine):
    """A FakeEngine whose model raises on windows of level 666 (whatever else is in the batch)."""

    def run_jobs(self, jobs):
        if any(job.level == 666 for job in jobs):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().run_jobs(jobs)


def test_inference_exception_fails_only_the_affected_session():
    """A model exception gives its session internal_error and 1011; the others and later ones work."""
    poisoned = level_audio([1, 2, 666, 3, 4, 5])
    good = level_audio([4] * 10)

    async def vosk_poisoned(server):
        async with connect(server.url + "/vosk") as ws:
            await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
            await ws.send(poisoned.tobytes())
            return await drain(ws), ws.close_code

    async def client(server):
        results = await asyncio.gather(recognize(server.url, [poisoned]), recognize(server.url, [good]),
                                       recognize(server.url, [good]), vosk_poisoned(server))
        later = await recognize(server.url, [good])
        return results, later

    (bad, ok1, ok2, (vosk_replies, vosk_code)), later = run_server(PoisonEngine(), client, max_wait_ms=50)
    assert bad.messages[-1]["type"] == "error" and bad.messages[-1]["code"] == "internal_error"
    assert bad.close_code == 1011
    assert (vosk_replies, vosk_code) == ([], 1011)
    for result in (ok1, ok2, later):
        assert [m["text"] for m in result.of_type("final")] == ["w4 w4 w4 w4 w4"] * 2 and result.close_code == 1000


def test_shutdown_is_bounded_with_a_client_that_does_not_read():
    """Shutdown finishes open sessions and returns within grace + close timeouts, even for a stuck reader."""
    async def client(server):
        stuck = await RawClient.connect(server.url)
        await stuck.send(START)
        for block in np.split(level_audio([7] * 200), 50):
            await asyncio.wait_for(stuck.send(block.tobytes()), 30)
        normal = await connect(server.url)
        await normal.send(START)
        await normal.send(level_audio([5] * 3).tobytes())
        while json.loads(await normal.recv()).get("end") != 0.3:  # its three windows were recognised
            pass
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.shutdown(), 30)
        took = loop.time() - started
        messages = await drain(normal)
        stuck.close()
        return took, [m["type"] for m in messages][-2:], normal.close_code

    took, last, code = run_server(BigPartialEngine(), client, shutdown_grace_s=1.0, send_timeout_s=60)
    assert took < 1.0 + 5 + 5  # grace + close timeout + margin
    assert last == ["final", "end_of_stream"] and code == 1001
