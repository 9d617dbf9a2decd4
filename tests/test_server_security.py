"""Security: tokens before audio, exposure warning, per-address limits, no client-chosen paths."""

import asyncio
import json
import logging
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server_fake import FakeEngine, http_status, level_audio, run_server
from xlsr_live.server.app import SpeechServer
from xlsr_live.server.engine import ModelEngine
from xlsr_live.server.options import ServerOptions, exposure_warning, is_loopback

MARKER = "xlsr-secret-7f3a9c"  # every path a hostile client names contains this
WATCHED = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir", "shutil.copyfile"}


@pytest.fixture(scope="module")
def touched():
    """Paths containing MARKER that this process opened, listed or changed (a sys.audit hook)."""
    seen = []

    def hook(event, args):
        if event in WATCHED and any(MARKER in str(a) for a in args[:2]):
            seen.append((event, str(args[0])))

    sys.addaudithook(hook)  # hooks cannot be removed; this one only looks for MARKER
    return seen


class CountingEngine(FakeEngine):
    """A FakeEngine that counts the recognizers it made."""

    def __init__(self):
        super().__init__()
        self.created = 0

    def create(self, options):
        self.created += 1
        return super().create(options)


async def status_of(url, **kwargs):
    """HTTP status of a refused handshake, or 101 when it was accepted (audio then sent)."""
    try:
        async with connect(url, **kwargs) as ws:
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(level_audio([1] * 3).tobytes())
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_missing_or_wrong_token_is_refused_before_any_audio():
    """Without the right token the handshake fails with 401: no session, no recognizer, no audio read."""
    engine = CountingEngine()

    async def client(server):
        url = server.url
        statuses = [await status_of(url), await status_of(url + "/?token=wrong"),
                    await status_of(url, additional_headers={"Authorization": "Bearer wrong"}),
                    await status_of(url + "/vosk?token=")]
        metrics = server.ctx.metrics
        return statuses, metrics.sessions_total, metrics.audio_seconds, metrics.rejected_total

    statuses, sessions, audio, rejected = run_server(engine, client, token="right-token")
    assert statuses == [401, 401, 401, 401]
    assert (sessions, audio, rejected, engine.created) == (0, 0.0, 4, 0)


def test_loopback_detection_and_exposure_warning():
    """No token is fine on loopback only; any other bind address gets a warning naming it."""
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "", "::", "192.168.1.5", "example.com"))
    assert exposure_warning(ServerOptions()) is None
    assert exposure_warning(ServerOptions(host="0.0.0.0", token="t")) is None
    assert "0.0.0.0" in exposure_warning(ServerOptions(host="0.0.0.0"))
    assert "all interfaces" in exposure_warning(ServerOptions(host=""))


def test_server_logs_the_warning_when_binding_all_interfaces(caplog):
    """Starting on 0.0.0.0 without a token logs the exposure warning; on 127.0.0.1 it does not."""
    async def start_stop(host):
        async with SpeechServer(FakeEngine(), ServerOptions(host=host, port=0)):
            pass

    with caplog.at_level(logging.WARNING, logger="xlsr_live.server.app"):
        asyncio.run(start_stop("127.0.0.1"))
        assert not [r for r in caplog.records if "without a token" in r.getMessage()]
        asyncio.run(start_stop("0.0.0.0"))
    assert [r for r in caplog.records if "without a token" in r.getMessage() and r.levelno == logging.WARNING]


def test_per_address_connection_limit():
    """A third connection from one address is refused with 429; a slot frees when one closes."""
    async def client(server):
        first, second = await connect(server.url), await connect(server.url)
        for ws in (first, second):
            await ws.send(json.dumps({"type": "start"}))
            assert json.loads(await ws.recv())["type"] == "ready"
        third = await status_of(server.url)
        await first.close()
        await asyncio.wait_for(server.wait_active(1), 10)
        fourth = await status_of(server.url)
        await second.close()
        return third, fourth

    assert run_server(FakeEngine(), client, max_connections_per_address=2) == (429, 101)


async def native_outcome(url, start):
    """(last message type or error code, close code) of a stream with `start`, 3 windows and end."""
    async with connect(url + "/native") as ws:
        await ws.send(json.dumps(start))
        messages = []
        try:
            await ws.send(level_audio([2] * 3).tobytes())
            await ws.send(json.dumps({"type": "end"}))
            async for raw in ws:
                messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
    last = messages[-1] if messages else {}
    return last.get("code", last.get("type")), ws.close_code


async def vosk_outcome(url, config):
    """(replies, close code) of a vosk stream with `config`, some audio and eof."""
    async with connect(url + "/vosk") as ws:
        replies = []
        try:
            await ws.send(json.dumps({"config": config}))
            await ws.send(level_audio([2] * 3).tobytes())
            replies.append(json.loads(await ws.recv()))
            await ws.send('{"eof": 1}')
            replies.append(json.loads(await ws.recv()))
            await ws.wait_closed()
        except ConnectionClosed:
            pass
    return len(replies), ws.close_code


def test_no_client_message_opens_a_path(tiny_model, tmp_path, touched):
    """Paths in start/config fields and URLs are refused or treated as words; none is ever opened."""
    secret = tmp_path / MARKER
    secret.mkdir()
    (secret / "lm.arpa").write_text("\\data\\\n")
    path = str(secret / "lm.arpa")
    touched.clear()

    async def client(server):
        url = server.url
        native = [await native_outcome(url, start) for start in (
            {"type": "start", "lm": path}, {"type": "start", "model": str(secret)},
            {"type": "start", "kenlm_path": path}, {"type": "start", "encoding": path},
            {"type": "start", "sample_rate": path}, {"type": "start", "hotwords": [path, "../" + MARKER]})]
        vosk = [await vosk_outcome(url, config) for config in (
            {"model": str(secret)}, {"model": path, "sample_rate": 16000}, {"lm": path, "sample_rate": 16000},
            {"phrase_list": [path], "sample_rate": 16000}, {"sample_rate": path})]
        base = url.replace("ws", "http", 1)
        pages = [await asyncio.to_thread(http_status, base + p) for p in (
            f"/static/..%2F..%2F{MARKER}", f"/static/{path}", f"/{MARKER}/lm.arpa", f"/static/%2e%2e/{MARKER}")]
        return native, vosk, pages

    native, vosk, pages = run_server(ModelEngine(tiny_model), client)
    assert native == [("bad_option", 1007)] * 5 + [("end_of_stream", 1000)]  # hotwords are words, never files
    assert vosk == [(0, 1008), (0, 1008), (2, 1000), (2, 1000), (0, 1007)]  # unknown keys are ignored
    assert pages == [404] * 4
    assert touched == []
    open(path).close()  # the hook does see opens of such paths (the check above is not vacuous)
    assert touched == [("open", path)]
