"""HTTP routes, limits and safety: healthz, metrics, 503, tokens, origins, sizes, TLS, shutdown."""

import asyncio
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server_fake import FakeEngine, level_audio, run_server
from xlsr_live.client.stream import recognize


def http_get(url):
    """(status, content type, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def refused_status(url, **kwargs):
    """HTTP status of a refused websocket handshake (None if it was accepted)."""
    try:
        async with connect(url, **kwargs):
            return None
    except InvalidStatus as exc:
        return exc.response.status_code


def test_healthz_metrics_and_page():
    """/healthz is JSON, /metrics has the documented series after a stream, / is the HTML page."""
    async def client(server):
        await recognize(server.url, [level_audio([1] * 6)])
        base = server.url.replace("ws", "http", 1)
        return [await asyncio.to_thread(http_get, base + path) for path in ("/healthz", "/metrics", "/", "/nope")]

    health, metrics, page, missing = run_server(FakeEngine(), client)
    assert health[0] == 200 and json.loads(health[2]) == {"status": "ok", "active_sessions": 0, "busy": False,
                                                      "max_sessions": 64, "recognizer": {}}
    assert metrics[0] == 200 and metrics[1].startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics[2]) for s in family.samples}
    assert samples[("xlsr_live_active_sessions", ())] == 0
    assert samples[("xlsr_live_sessions_total", ())] == 1
    assert samples[("xlsr_live_audio_seconds_total", ())] == pytest.approx(0.6)
    assert samples[("xlsr_live_real_time_factor", ())] >= 0
    assert samples[("xlsr_live_batch_size_bucket", (("le", "+Inf"),))] == 6
    assert samples[("xlsr_live_queue_depth", ())] == 0
    assert samples[("xlsr_live_partial_latency_seconds_count", ())] == 5
    documented = {"xlsr_live_active_sessions", "xlsr_live_sessions_total", "xlsr_live_rejected_connections_total",
                  "xlsr_live_audio_seconds_total", "xlsr_live_compute_seconds_total", "xlsr_live_real_time_factor",
                  "xlsr_live_batches_total", "xlsr_live_dropped_partials_total", "xlsr_live_queue_depth",
                  "xlsr_live_queue_wait_seconds", "xlsr_live_rejected_busy_total", "xlsr_live_batch_size_count",
                  "xlsr_live_partial_latency_seconds_count"}  # docs/protocol.md
    assert documented <= {name for name, _ in samples}
    assert page[0] == 200 and page[1].startswith("text/html") and "<html" in page[2].lower()
    assert missing[0] == 404


def test_max_connections_token_and_origin():
    """Beyond max connections: 503; wrong or missing token: 401; foreign Origin: 403."""
    async def client(server):
        url = server.url
        statuses = {"no_token": await refused_status(url), "bad_token": await refused_status(url + "/?token=x"),
                    "header": await refused_status(url, additional_headers={"Authorization": "Bearer s3cret"}),
                    "evil_origin": await refused_status(url + "/?token=s3cret", origin="http://evil.example")}
        async with connect(url + "/?token=s3cret", origin="http://good.example") as ws:
            await ws.send(json.dumps({"type": "start"}))
            assert json.loads(await ws.recv())["type"] == "ready"  # its handler is running
            statuses["second"] = await refused_status(url + "/?token=s3cret")
        return statuses

    statuses = run_server(FakeEngine(), client, token="s3cret", max_connections=1,
                          allowed_origins=("http://good.example",))
    assert statuses == {"no_token": 401, "bad_token": 401, "header": None, "evil_origin": 403, "second": 503}


def test_message_too_big_closes_1009():
    """A message over max_message_bytes closes the connection with 1009."""
    async def client(server):
        async with connect(server.url) as ws:
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(bytes(4096))
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            return ws.close_code

    assert run_server(FakeEngine(), client, max_message_bytes=1024) == 1009


def test_shutdown_gives_open_sessions_final_and_clean_close():
    """On shutdown every open session gets its final result, end_of_stream and close 1001."""
    async def client(server):
        sockets = [await connect(server.url) for _ in range(3)]
        for level, ws in enumerate(sockets, 1):
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(level_audio([level] * 3).tobytes())
            assert json.loads(await ws.recv())["type"] == "ready"
        for ws in sockets:  # wait until each stream's three windows were recognised
            while json.loads(await ws.recv()).get("end") != 0.3:
                pass
        await server.shutdown()
        outcomes = []
        for ws in sockets:
            messages = [json.loads(m) async for m in ws]
            outcomes.append(([m["text"] for m in messages if m["type"] == "final"], messages[-1]["type"],
                             ws.close_code))
        return outcomes

    assert run_server(FakeEngine(), client) == [
        (["w1 w1 w1"], "end_of_stream", 1001), (["w2 w2 w2"], "end_of_stream", 1001),
        (["w3 w3 w3"], "end_of_stream", 1001)]


def test_tls_with_cert_and_key(tmp_path):
    """With a certificate and key the server speaks wss://."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                           "/CN=localhost", "-keyout", str(key), "-out", str(cert)], capture_output=True)
    if made.returncode:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr.decode()[-200:]}")
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False

    async def client(server):
        assert server.url.startswith("wss://")
        async with connect(server.url, ssl=context) as ws:
            await ws.send(json.dumps({"type": "start"}))
            return json.loads(await ws.recv())["type"]

    assert run_server(FakeEngine(), client, tls_cert=str(cert), tls_key=str(key)) == "ready"


class SlowEngine(FakeEngine):
    """A FakeEngine whose every forward pass takes `delay` seconds (a model slower than real time)."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def run_jobs(self, jobs):
        import time

        time.sleep(self.delay)
        return super().run_jobs(jobs)


def test_busy_server_refuses_new_sessions_and_keeps_open_ones():
    """Windows waiting longer than busy_wait_ms: new handshakes get 503, open sessions finish intact."""
    audio = level_audio([3] * 20)

    async def stream(ws):
        await ws.send(json.dumps({"type": "start"}))
        for block in (audio[i:i + 1600] for i in range(0, audio.size, 1600)):
            await ws.send(block.tobytes())
        await ws.send(json.dumps({"type": "end"}))
        return [json.loads(m) async for m in ws]

    async def client(server):
        sockets = [await connect(server.url) for _ in range(4)]
        streams = [asyncio.ensure_future(stream(ws)) for ws in sockets]
        for _ in range(200):  # until the moving average of window waits passes the limit
            if server.ctx.batcher.recent_wait > 0.1:
                break
            await asyncio.sleep(0.05)
        busy = await refused_status(server.url)
        health = json.loads(await asyncio.to_thread(lambda: http_get(server.url.replace("ws", "http", 1) + "/healthz")[2]))
        replies = await asyncio.gather(*streams)
        return busy, health, replies, server.ctx.metrics.rejected_busy_total

    busy, health, replies, rejected = run_server(SlowEngine(0.1), client, batching=False, busy_wait_ms=100)
    assert busy == 503 and health["busy"] is True and rejected == 1
    for messages in replies:
        assert messages[-1]["type"] == "end_of_stream" and messages[-1]["samples"] == audio.size
        assert len([m for m in messages if m["type"] == "final"]) == 4


def test_each_server_has_its_own_metrics_registry():
    """Two servers' metrics do not mix, and nothing lands in prometheus_client's global registry."""
    from prometheus_client import REGISTRY

    from xlsr_live.server.metrics import Metrics

    first, second = Metrics(), Metrics()
    first.sessions_total += 3
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("xlsr_live_sessions_total") == 3
    assert second.registry.get_sample_value("xlsr_live_sessions_total") == 0
    assert REGISTRY.get_sample_value("xlsr_live_sessions_total") is None
