"""Per-stream memory (benchmarks/memory.py helpers) and one model per server process."""

import asyncio

import numpy as np

import memory
import xlsr_live.model
from xlsr_live.client.stream import recognize, split_blocks
from xlsr_live.server import cli as serve_cli
from xlsr_live.server.app import SpeechServer
from xlsr_live.server.options import ServerOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer

MIB = 2**20


def test_state_bytes_counts_arrays_and_skips_shared_objects():
    """Arrays are counted once (views via their base), shared objects not at all."""
    shared = np.zeros(1000, np.float32)
    own = np.zeros(250, np.float32)
    holder = {"own": own, "view": own[10:], "shared": shared}
    sizes = memory.state_bytes(holder, shared=(shared,))
    assert sizes["numpy"] == own.nbytes
    assert sizes["total"] == sizes["numpy"] + sizes["torch"] + sizes["python"]


def test_recognizer_state_mid_utterance_is_under_two_mib(tiny_model, speech_audio):
    """Eight seconds of speech cut mid-sentence leave well under 2 MiB of per-stream state."""
    speech = np.concatenate([speech_audio[8000:-16000]] * 3)  # long stretch, cut inside speech
    clip = speech[: int(speech.size * 0.9)]
    recognizer = StreamingRecognizer(tiny_model)
    memory.drive(tiny_model, [recognizer], [clip])
    sizes = memory.state_bytes(recognizer, shared=(tiny_model, tiny_model.model, tiny_model.vocab))
    assert recognizer._utterances, "the clip should end inside an utterance"  # noqa: SLF001
    assert 0 < sizes["total"] < 2 * MIB


def test_server_loads_the_model_once_for_many_sessions(tiny_model, speech_audio, monkeypatch):
    """`serve` loads the model once; eight concurrent sessions all share that one model object."""
    loads, recognizers = [], []

    def counting_load(*args, **kwargs):
        loads.append(args)
        return tiny_model

    async def serve_sessions(engine, options, ready=None):
        create = engine.create
        monkeypatch.setattr(engine, "create", lambda opts: recognizers.append(create(opts)) or recognizers[-1])
        async with SpeechServer(engine, ServerOptions(port=0)) as server:
            blocks = split_blocks((speech_audio * 32767).astype(np.int16), 16_000, 200)
            results = await asyncio.gather(*(recognize(server.url, blocks) for _ in range(8)))
        assert all(r.of_type("end_of_stream") for r in results)

    monkeypatch.setattr(xlsr_live.model, "load_model", counting_load)
    monkeypatch.setattr(serve_cli, "serve_until_signal", serve_sessions)
    args = serve_cli.build_parser().parse_args(["--model", "whatever", "--port", "0"])
    assert serve_cli.run(args) == 0
    assert len(loads) == 1
    assert len(recognizers) == 8 and all(r.model is tiny_model for r in recognizers)
