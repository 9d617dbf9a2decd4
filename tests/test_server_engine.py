"""The server with the real streaming engine and a tiny random model: no cross-talk, nothing lost."""

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect

from server_fake import RATE, SENTENCES, run_server, speak
from xlsr_live.client.stream import recognize, split_blocks
from xlsr_live.decoding import DecoderOptions
from xlsr_live.server.engine import ModelEngine
from xlsr_live.server.options import StreamOptions
from xlsr_live.streaming.events import event_to_dict
from xlsr_live.streaming.options import StreamingOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer


@pytest.fixture(scope="module")
def speech_clips():
    """16 clips of two spoken phrases separated by one second of silence (two utterances each)."""
    silence = np.zeros(RATE, dtype=np.int16)
    return [np.concatenate([speak(s), silence, speak(SENTENCES[(i + 5) % 16]), silence[: RATE // 4]])
            for i, s in enumerate(SENTENCES)]


def engine_alone(model, audio, options=None):
    """Finals of the engine fed the clip directly (the reference), as protocol dicts."""
    recognizer = StreamingRecognizer(model, options or StreamingOptions(), sample_rate=RATE)
    events = []
    for block in split_blocks(audio, RATE, 100):
        events += recognizer.feed(block)
    events += recognizer.flush()
    return [event_to_dict(e) for e in events if e.type == "final"]


def test_sixteen_concurrent_clients_get_exactly_their_own_finals(tiny_model, speech_clips):
    """16 clients streaming different audio at once get the finals each file gives alone."""
    expected = [engine_alone(tiny_model, clip) for clip in speech_clips]
    assert all(len(finals) >= 2 for finals in expected)
    engine = ModelEngine(tiny_model)

    async def client(server):
        from xlsr_live.client.stream import ClientOptions

        options = ClientOptions(sample_rate=RATE)
        results = await asyncio.gather(*(recognize(server.url, split_blocks(clip, RATE, 100), options)
                                         for clip in speech_clips))
        return results, server.ctx.metrics

    results, metrics = run_server(engine, client, max_wait_ms=20)
    for result, want in zip(results, expected):
        assert result.of_type("final") == want
        assert result.close_code == 1000
    assert metrics.batch_size.counts[0] < metrics.batch_size.count, "some forward passes held several windows"


def test_vosk_client_with_real_engine_gets_the_same_text(tiny_model, speech_clips):
    """A vosk test.py-style client gets one reply per chunk and the engine's final texts."""
    clip = speech_clips[3]
    want = [f["text"] for f in engine_alone(tiny_model, clip) if f["text"]]

    async def client(server):
        replies = []
        async with connect(server.url) as ws:
            await ws.send('{ "config" : { "sample_rate" : %d } }' % RATE)
            pcm = clip.tobytes()
            step = int(RATE * 0.2) * 2
            for offset in range(0, len(pcm), step):
                await ws.send(pcm[offset:offset + step])
                replies.append(json.loads(await ws.recv()))
            await ws.send('{"eof" : 1}')
            replies.append(json.loads(await ws.recv()))
        return replies

    replies = run_server(ModelEngine(tiny_model), client, protocol="vosk")
    assert len(replies) == -(-len(clip) * 2 // (int(RATE * 0.2) * 2)) + 1
    got = [r["text"] for r in replies if r.get("text")]
    assert " ".join(got) == " ".join(want)
    assert any(r.get("partial") for r in replies)


def test_model_engine_maps_stream_options(tiny_model):
    """Stream options reach the engine; lm without a server LM is refused with a ValueError."""
    engine = ModelEngine(tiny_model)
    assert engine._options_for(StreamOptions(partials=False)).emit_partials is False
    assert engine._options_for(StreamOptions(hotwords=("fox",))).decoder.hotwords == ("fox",)
    with pytest.raises(ValueError, match="lm=true"):
        engine.create(StreamOptions(lm=True))
    with pytest.raises(ValueError, match="sample rate"):
        engine.create(StreamOptions(sample_rate=100))


def test_hotwords_switch_the_stream_to_beam_search(tiny_model, speech_clips):
    """A start message with hotwords gets the finals of the engine's beam decoder with them."""
    from xlsr_live.client.stream import ClientOptions

    clip = speech_clips[0]
    want = engine_alone(tiny_model, clip, StreamingOptions(decoder=DecoderOptions(kind="beam", hotwords=("hello",))))

    async def client(server):
        return await recognize(server.url, split_blocks(clip, RATE, 100),
                               ClientOptions(sample_rate=RATE, hotwords=("hello",)))

    result = run_server(ModelEngine(tiny_model), client)
    assert result.of_type("final") == want and not result.of_type("error")
