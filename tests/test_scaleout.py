"""Scale-out for real: nginx with deploy/nginx/nginx.conf over 3 `xlsr-live serve` replicas on loopback.

24 concurrent clients spread over all replicas; SIGTERM to one replica mid-stream: it turns not
ready, gives its sessions their finals and closes them with 1001; the clients (`--reconnect`)
resume on the other replicas; every sample sent is received once, no final is lost.
"""

import asyncio
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from serve_process import DEMO, ServeProcess
from xlsr_live.client.resume import recognize_resuming
from xlsr_live.client.stream import ClientOptions, paced, split_blocks

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian package)")
CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "nginx.conf"
CLIENTS, REPLICAS = 24, 3


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(directory: Path, ports: list[int]) -> tuple[subprocess.Popen, int]:
    """nginx with the repository's config: only its listen address, replica list and file paths differ."""
    port = free_port()
    text = CONF.read_text().replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("/tmp/xlsr-live-nginx", str(directory / "nginx"))
    (directory / "nginx.conf").write_text(text)
    (directory / "upstream.conf").write_text("".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"
                                                     for p in ports))
    proc = subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                            stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {proc.stderr.read()}")
            subprocess.run(["sleep", "0.1"])
    raise RuntimeError("nginx did not listen within 10 s")


def metric(base: str, name: str) -> float:
    """One unlabelled series of a replica's /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def readiness_while_draining(base: str) -> int:
    """/healthz status right after SIGTERM (0 if the replica had already closed its port)."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def speech():
    """The demo example and 1 s of silence, 16 kHz int16."""
    audio, rate = soundfile.read(DEMO / "example.wav", dtype="int16")
    return np.concatenate([audio, np.zeros(rate, np.int16)])


def test_24_clients_over_3_replicas_survive_a_replica_going_away(tmp_path, speech):
    """Sessions spread over every replica; one drains mid-stream; its clients resume elsewhere, nothing lost."""
    args = ("--max-connections-per-address", "0", "--workers", "1", "--threads", "1")
    with ServeProcess(*args) as a, ServeProcess(*args) as b, ServeProcess(*args) as c:
        replicas = [a, b, c]
        ports = [int(r.http.rsplit(":", 1)[1]) for r in replicas]
        nginx, port = start_nginx(tmp_path, ports)
        try:
            results, spread, ready, drained_exit = asyncio.run(scenario(replicas, port, speech))
            totals = [metric(r.http, "xlsr_live_sessions_total") for r in replicas[1:]]
        finally:
            nginx.terminate()
            nginx.wait(10)
    print(f"sessions per replica {spread}; resumed {sum(len(r) > 1 for r in results)}; others' totals {totals}")
    assert sum(spread) == CLIENTS and min(spread) >= 1, spread  # least_conn spread them over all replicas
    assert ready == 503 and drained_exit == 0  # not ready while draining; clean exit
    moved = [r for r in results if len(r) > 1]
    assert len(moved) == spread[0]  # exactly the drained replica's sessions reconnected
    assert sum(totals) == CLIENTS  # the others served their own sessions plus the moved ones
    for connections in results:
        assert connections[-1].close_code == 1000
        ends = [conn.of_type("end_of_stream") for conn in connections]
        assert all(len(e) == 1 for e in ends)  # every connection, drained or not, ended with end_of_stream
        assert sum(e[0]["samples"] for e in ends) == speech.size  # every sample received exactly once
    for connections in moved:
        first = connections[0]
        assert first.close_code == 1001 and first.messages[-2]["type"] == "final"  # its final before the close
        finals = [f for conn in connections for f in conn.of_type("final")]
        assert all(x["end"] <= y["end"] for x, y in zip(finals, finals[1:]))  # one time line


async def scenario(replicas, port, speech):
    """Stream CLIENTS files through nginx; SIGTERM replica 0 once sessions are spread and audio flows."""
    url = f"ws://127.0.0.1:{port}/native"
    blocks = split_blocks(speech, 16_000, 100)
    streams = [asyncio.ensure_future(recognize_resuming(url, paced(blocks, 16_000, 1.0), ClientOptions()))
               for _ in range(CLIENTS)]
    spread = [0] * REPLICAS
    for _ in range(200):  # until every session is open (and has sent about 2 s of audio)
        await asyncio.sleep(0.1)
        spread = [int(await asyncio.to_thread(metric, r.http, "xlsr_live_active_sessions")) for r in replicas]
        if sum(spread) == CLIENTS:
            break
    await asyncio.sleep(2.0)
    replicas[0].proc.send_signal(signal.SIGTERM)
    ready = await asyncio.to_thread(readiness_while_draining, replicas[0].http)
    drained_exit = await asyncio.to_thread(replicas[0].proc.wait, 60)
    results = await asyncio.wait_for(asyncio.gather(*streams), 120)
    return results, spread, ready, drained_exit
