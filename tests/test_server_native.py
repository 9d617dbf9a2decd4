"""Native protocol against a fake engine: messages, errors, close codes, batching."""

import asyncio
import json

import numpy as np
from websockets.asyncio.client import connect

from server_fake import WINDOW, FakeEngine, drain, level_audio, run_server
from xlsr_live.client.stream import ClientOptions, recognize, split_blocks


async def _exchange(url, messages):
    """Send raw messages, then collect replies until the server closes."""
    async with connect(url) as ws:
        for message in messages:
            await ws.send(message)
        return await drain(ws), ws.close_code


def test_native_stream_gives_ready_partials_final_and_end():
    """A whole stream yields ready, partials, one final per utterance and end_of_stream."""
    audio = level_audio([1, 2, 3, 4, 5, 6, 7])

    async def client(server):
        return await recognize(server.url, split_blocks(audio, 16000, 50))

    result = run_server(FakeEngine(), client)
    types = [m["type"] for m in result.messages]
    assert types[0] == "ready" and types[-1] == "end_of_stream"
    assert [m["text"] for m in result.of_type("final")] == ["w1 w2 w3 w4 w5", "w6 w7"]
    assert result.of_type("final")[0]["words"][0] == {"word": "w1", "start": 0.4, "end": 0.5, "conf": 1.0}
    assert result.of_type("partial")[0] == {"type": "partial", "stable": "", "unstable": " w1",
                                             "start": 0.0, "end": 0.1}
    assert result.close_code == 1000


def test_native_f32_and_partials_off():
    """pcm_f32le audio is accepted; partials=false suppresses partial events."""
    audio = level_audio([9] * 5).astype(np.float32) / 32768

    async def client(server):
        return await recognize(server.url, [audio], ClientOptions(encoding="pcm_f32le", partials=False))

    result = run_server(FakeEngine(), client)
    assert not result.of_type("partial")
    assert [m["text"] for m in result.of_type("final")] == ["w9 w9 w9 w9 w9"]


def test_native_bad_input_gets_error_event_and_close_code():
    """Audio before start, bad JSON, bad options and odd byte counts are refused with codes."""
    start = json.dumps({"type": "start", "sample_rate": 16000})

    async def client(server):
        return [await _exchange(server.url, messages) for messages in (
            [b"\x00\x00"],
            ["{not json"],
            [json.dumps({"type": "start", "encoding": "mp3"})],
            [json.dumps({"type": "start", "sample_rate": 5})],
            [json.dumps({"type": "start", "colour": "red"})],
            [start, b"\x00\x00\x00"],
            [start, json.dumps({"type": "pause"})],
        )]

    outcomes = run_server(FakeEngine(), client)
    got = [(replies[-1]["code"], code) for replies, code in outcomes]
    assert got == [("bad_message", 1003), ("bad_json", 1007), ("bad_option", 1007), ("bad_option", 1007),
                   ("bad_option", 1007), ("bad_audio", 1007), ("bad_message", 1003)]
    assert all(replies[-1]["type"] == "error" and replies[-1]["message"] for replies, _ in outcomes)


def test_native_idle_timeout_flushes_and_closes_4001():
    """A silent client gets its final result, then close code 4001."""
    audio = level_audio([3, 3])

    async def client(server):
        return await _exchange(server.url, [json.dumps({"type": "start"}), audio.tobytes()])

    replies, code = run_server(FakeEngine(), client, idle_timeout_s=0.3)
    assert code == 4001
    assert [m["text"] for m in replies if m["type"] == "final"] == ["w3 w3"]


def test_session_time_limit_flushes_and_closes_4002():
    """A session over its total time limit gets its final result, then close code 4002."""
    audio = level_audio([6])

    async def client(server):
        return await _exchange(server.url, [json.dumps({"type": "start"}), audio.tobytes()])

    replies, code = run_server(FakeEngine(), client, idle_timeout_s=30, session_timeout_s=0.3)
    assert code == 4002
    assert [m["type"] for m in replies][-2:] == ["final", "end_of_stream"]
    assert replies[-1]["reason"] == "session time limit"


def test_batching_gathers_windows_of_many_sessions():
    """Windows of concurrent sessions share forward passes; with batching off each runs alone."""
    audio = level_audio(range(1, 21))

    async def many(server):
        results = await asyncio.gather(*(recognize(server.url, [audio]) for _ in range(6)))
        return [m["text"] for r in results for m in r.of_type("final")]

    for batching in (True, False):
        engine = FakeEngine()
        finals = run_server(engine, many, batching=batching, max_wait_ms=50)
        assert len(finals) == 6 * 4 and len(set(finals)) == 4
        assert (max(engine.batch_sizes) > 1) == batching


def test_stalled_client_does_not_delay_others():
    """A session that stops sending mid-stream does not hold back another session's finals."""
    audio = level_audio([5] * 10)

    async def client(server):
        async with connect(server.url) as stalled:
            await stalled.send(json.dumps({"type": "start"}))
            await stalled.send(audio[: WINDOW * 3].tobytes())  # then nothing: it stalls
            result = await asyncio.wait_for(recognize(server.url, [audio]), 30)
            return [m["text"] for m in result.of_type("final")]

    assert run_server(FakeEngine(), client, max_wait_ms=20) == ["w5 w5 w5 w5 w5"] * 2
