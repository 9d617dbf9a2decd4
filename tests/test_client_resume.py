"""`xlsr-live client --reconnect`: a stream outlives its server going away, no audio and no final lost."""

import asyncio

import pytest

from server_fake import WINDOW, FakeEngine, level_audio
from xlsr_live.client.resume import recognize_resuming, shift_times
from xlsr_live.client.stream import ClientOptions, paced
from xlsr_live.server.app import SpeechServer
from xlsr_live.server.options import ServerOptions


def test_shift_times_moves_event_and_word_times():
    """Events of a resumed connection are moved by the audio already done."""
    final = {"type": "final", "text": "a", "start": 0.5, "end": 1.0, "words": [{"word": "a", "start": 0.5, "end": 1.0}]}
    assert shift_times(final, 2.0) == {"type": "final", "text": "a", "start": 2.5, "end": 3.0,
                                       "words": [{"word": "a", "start": 2.5, "end": 3.0}]}


def test_stream_resumes_on_a_new_server_after_shutdown():
    """Server A drains mid-stream (finals, end_of_stream, 1001); server B on the same port gets the rest."""
    levels = list(range(1, 41))  # 40 windows of 100 ms, each its own 'word'
    audio = level_audio(levels)
    blocks = [audio[i:i + WINDOW] for i in range(0, audio.size, WINDOW)]

    async def main():
        first = await SpeechServer(FakeEngine(), ServerOptions(port=0)).start()
        port = first.port
        stream = asyncio.ensure_future(recognize_resuming(first.url, paced(blocks, 16_000, speed=4.0),
                                                          ClientOptions(), attempts=50))
        while first.ctx.metrics.audio_seconds < 1.0:  # a quarter of the stream is in
            await asyncio.sleep(0.05)
        await first.shutdown()
        second = await SpeechServer(FakeEngine(), ServerOptions(port=port)).start()
        try:
            results = await asyncio.wait_for(stream, 60)
        finally:
            await second.shutdown()
        return results, first.ctx.metrics.audio_seconds, second.ctx.metrics.audio_seconds

    results, first_seconds, second_seconds = asyncio.run(main())
    assert [r.close_code for r in results] == [1001, 1000]
    ends = [r.of_type("end_of_stream")[-1] for r in results]
    assert sum(e["samples"] for e in ends) == audio.size and first_seconds + second_seconds == pytest.approx(4.0)
    words = [w for r in results for f in r.of_type("final") for w in f["text"].split()]
    assert words == [f"w{level}" for level in levels]  # every window recognised once, in order
    ends = [f["end"] for r in results for f in r.of_type("final")]
    assert ends == sorted(set(ends)) and ends[-1] == pytest.approx(4.0)  # one time line, shifted after the resume


def test_client_cli_reconnect_flag_uses_the_resuming_stream(monkeypatch, tmp_path):
    """`xlsr-live client FILE --reconnect` streams through recognize_resuming and reports how the stream ended."""
    import io

    import soundfile

    from xlsr_live.client import cli as client_cli
    from xlsr_live.client import resume
    from xlsr_live.client.stream import StreamResult

    calls = []

    async def fake(url, blocks, options, on_message):
        calls.append(url)
        return [StreamResult(({"type": "end_of_stream"},), 1001, ""), StreamResult(({"type": "final", "text": "hi",
                "start": 0.0, "end": 1.0},), 1000, "")]

    monkeypatch.setattr(resume, "recognize_resuming", fake)
    wav = tmp_path / "a.wav"
    soundfile.write(wav, level_audio([1]), 16000)
    args = client_cli.build_parser().parse_args([str(wav), "--reconnect", "--speed", "0", "--url", "ws://lb/native"])
    assert client_cli.run(args, io.StringIO()) == 0 and calls == ["ws://lb/native"]
