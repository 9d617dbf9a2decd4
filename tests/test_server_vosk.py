"""vosk-server protocol against a fake engine: one reply per message, exact message shapes."""

import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server_fake import WINDOW, FakeEngine, level_audio, run_server


async def vosk_test_client(url, pcm: bytes, sample_rate: int, chunk_bytes: int, config=True):
    """Written like vosk-server's websocket/test.py: send a chunk, wait for its reply."""
    replies = []
    async with connect(url) as websocket:
        if config:
            await websocket.send('{ "config" : { "sample_rate" : %d } }' % sample_rate)
        for offset in range(0, len(pcm), chunk_bytes):
            await websocket.send(pcm[offset:offset + chunk_bytes])
            replies.append(json.loads(await websocket.recv()))
        await websocket.send('{"eof" : 1}')
        replies.append(json.loads(await websocket.recv()))
        try:
            await websocket.recv()
        except ConnectionClosed:
            pass
        return replies, websocket.close_code


def test_vosk_one_reply_per_chunk_partials_results_and_final():
    """Each chunk gets exactly one partial or result; eof gets the last result, then close."""
    pcm = level_audio([1, 2, 3, 4, 5, 6, 7]).tobytes()

    async def client(server):
        return await vosk_test_client(server.url, pcm, 16000, WINDOW)  # half a window per chunk

    replies, code = run_server(FakeEngine(), client, protocol="vosk")
    assert len(replies) == 14 + 1 and code == 1000
    assert replies[0] == {"partial": ""}
    assert replies[1] == {"partial": "w1"}
    results = [r for r in replies if "text" in r]
    assert [r["text"] for r in results] == ["w1 w2 w3 w4 w5", "w6 w7"]
    assert results[0]["result"][0] == {"conf": 1.0, "end": 0.5, "start": 0.4, "word": "w1"}
    assert set(results[0]) == {"result", "text"}
    assert all(set(r) == {"partial"} for r in replies if "text" not in r)


def test_vosk_default_8k_empty_final_and_reset():
    """No config means 8 kHz; an empty final is {"text": ""}; reset replies with the final result."""
    async def client(server):
        async with connect(server.url + "/vosk") as ws:
            await ws.send('{"eof" : 1}')
            empty = json.loads(await ws.recv())
        async with connect(server.url + "/vosk") as ws:
            await ws.send(level_audio([4] * 6).tobytes())
            first = json.loads(await ws.recv())
            await ws.send('{"reset" : 1}')
            after_reset = json.loads(await ws.recv())
            await ws.send(json.dumps({"eof": True}))
            last = json.loads(await ws.recv())
            await ws.wait_closed()
            return empty, first, after_reset, last, ws.close_code

    engine = FakeEngine()
    empty, first, after_reset, last, code = run_server(engine, client, protocol="native")
    assert empty == {"text": ""}
    assert first["text"] == "w4 w4 w4 w4 w4" and first["result"][-1]["end"] == 1.0  # 5 windows at 8 kHz
    assert after_reset["text"] == "w4" and last == {"text": ""} and code == 1000


def test_vosk_refuses_model_path_and_bad_audio():
    """A config naming a model is refused (1008); an odd byte count closes with 1007."""
    async def client(server):
        codes = []
        for first in (json.dumps({"config": {"model": "/etc"}}), b"\x01\x02\x03"):
            async with connect(server.url) as ws:
                await ws.send(first)
                try:
                    await ws.recv()
                except ConnectionClosed:
                    pass
                codes.append(ws.close_code)
        return codes

    assert run_server(FakeEngine(), client, protocol="vosk") == [1008, 1007]


def test_vosk_words_off_and_alternatives():
    """words=false gives {"text"} only; max_alternatives gives vosk's alternatives shape."""
    async def client(server):
        replies = []
        for config in ({"words": False}, {"max_alternatives": 2}):
            async with connect(server.url) as ws:
                await ws.send(json.dumps({"config": dict(config, sample_rate=16000)}))
                await ws.send(level_audio([2] * 5).tobytes())
                replies.append(json.loads(await ws.recv()))
        return replies

    words_off, alternatives = run_server(FakeEngine(), client, protocol="vosk")
    assert words_off == {"text": "w2 w2 w2 w2 w2"}
    assert alternatives["alternatives"][0]["text"] == "w2 w2 w2 w2 w2"
    assert len(alternatives["alternatives"][0]["result"]) == 5
