"""Offline transcription decodes the stitched logits with the streaming decoder choice (checkpoint LM by default)."""

import dataclasses

import numpy as np
import pytest
import soundfile

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.decoding import BeamSearches, DecoderOptions
from xlsr_live.offline import OfflineOptions, iter_window_logits, transcribe_array

pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

SPOKEN = "hello world"
HEARD_AS = {"e": "a"}  # acoustics prefer "a" over the spoken "e": greedy hears "hallo world"
WINDOWS = OfflineOptions(chunk_ms=400, left_stride_ms=100, right_stride_ms=100)  # several windows stitched
LEAD_FRAMES = 7  # blank frames before the speech, so words straddle window edges


@dataclasses.dataclass
class ScriptedModel:
    """The LM checkpoint's vocabulary and source with scripted logits: each audio sample holds the
    index of its frame, so every window yields the rows of the frames it covers."""

    model: object

    def __getattr__(self, name):
        return getattr(self.model, name)

    def logits(self, audio: np.ndarray) -> np.ndarray:
        """Scripted rows for the frames of `audio` (3 frames per character then a blank)."""
        vocab, hop = self.model.vocab, self.model.config.hop_samples
        script = [(vocab.blank_id, None)] * LEAD_FRAMES
        for char in SPOKEN:
            heard = HEARD_AS.get(char)
            script += [(vocab.labels.index("|" if char == " " else char), heard and vocab.labels.index(heard))] * 3
            script.append((vocab.blank_id, None))
        frames = audio[::hop][: len(audio) // hop].astype(int)
        out = np.zeros((len(frames), len(vocab)), np.float32)
        for row, frame in enumerate(frames):
            spoken, heard = script[frame] if frame < len(script) else (vocab.blank_id, None)
            out[row, spoken] = 9.0 if heard is not None else 10.0
            if heard is not None:
                out[row, heard] = 10.0
        return out


def _frame_audio(model, seconds: float = 2.0) -> np.ndarray:
    """Audio whose samples are their frame indices (for ScriptedModel)."""
    return (np.arange(int(seconds * SAMPLE_RATE)) // model.config.hop_samples).astype(np.float32)


def test_checkpoint_language_model_changes_a_word(lm_model):
    """By default offline decoding uses language_model/: beam search turns the acoustics' "hallo" into "hello"."""
    model = ScriptedModel(lm_model)
    result = transcribe_array(model, _frame_audio(lm_model), WINDOWS)
    assert result.text == "hello world"
    assert [w.word for w in result.words] == ["hello", "world"]


def test_decoder_greedy_keeps_the_acoustic_text(lm_model):
    """kind="greedy" ignores the language model and prints what the acoustics prefer."""
    model = ScriptedModel(lm_model)
    assert transcribe_array(model, _frame_audio(lm_model), WINDOWS, DecoderOptions(kind="greedy")).text == "hallo world"


def test_beam_text_equals_decode_beams_on_stitched_logits(lm_model, lm_checkpoint):
    """Offline beam text and word frames equal pyctcdecode's decode_beams over the same stitched logits."""
    import pyctcdecode

    from xlsr_live.decoding.beam import BeamAlphabet, log_softmax
    from xlsr_live.decoding.lm import read_language_model

    audio = np.random.default_rng(3).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.3
    options = DecoderOptions(kind="beam", kenlm_path=str(lm_checkpoint / "language_model"), beam_width=8)
    result = transcribe_array(lm_model, audio, WINDOWS, options)

    alphabet = BeamAlphabet(lm_model.vocab)
    stitched = np.concatenate(list(iter_window_logits(lm_model, [audio], WINDOWS)))
    files = read_language_model(lm_checkpoint / "language_model")
    reference = pyctcdecode.build_ctcdecoder(alphabet.labels, str(files.model_path), list(files.unigrams),
                                             alpha=files.attrs["alpha"], beta=files.attrs["beta"])
    best = reference.decode_beams(alphabet.reduce(log_softmax(stitched)).astype(np.float32), beam_width=8,
                                  token_min_logp=options.token_min_logp)[0]
    assert result.text and result.text == best[0]
    per_frame = lm_model.config.hop_samples / SAMPLE_RATE
    assert [(w.word, round(w.start / per_frame), round(w.end / per_frame)) for w in result.words] == \
        [(word, start, end) for word, (start, end) in best[2]]
    assert all(0.0 <= w.conf <= 1.0 for w in result.words)


def test_shared_beam_search_is_reused(lm_model):
    """A BeamSearches passed in (a server's) serves the call; no second decoder is built."""
    from xlsr_live.offline import transcribe_blocks

    searches = BeamSearches()
    model = ScriptedModel(lm_model)
    for _ in range(2):
        result = transcribe_blocks(model, [_frame_audio(lm_model)], WINDOWS, beam_searches=searches)
        assert result.text == "hello world"
    assert len(searches) == 1


def test_cli_decoder_flag(tmp_path, lm_checkpoint, capsys):
    """`xlsr-live transcribe` decodes with the checkpoint's LM by default and greedily with --decoder greedy."""
    from xlsr_live.cli import main
    from xlsr_live.defaults import RecognizerOptions, load_recognizer
    from xlsr_live.offline import transcribe_file

    path = tmp_path / "noise.wav"
    soundfile.write(path, np.random.default_rng(5).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.3,
                    SAMPLE_RATE)
    setup = load_recognizer(RecognizerOptions(model=str(lm_checkpoint), device="cpu"))
    assert setup.streaming.decoder.kind == "beam"
    printed = []
    for flags, decoder in (([], setup.streaming.decoder), (["--decoder", "greedy"], DecoderOptions(kind="greedy"))):
        assert main(["transcribe", str(path), "--model", str(lm_checkpoint), "--device", "cpu", *flags]) == 0
        printed.append(capsys.readouterr().out.strip())
        assert printed[-1] == transcribe_file(setup.model, path, decoder=decoder).text
    assert printed[0] != printed[1]  # the LM's words differ from the random model's greedy letters


def test_rest_endpoint_uses_the_servers_beam_search(lm_model, tmp_path, monkeypatch):
    """The OpenAI REST path decodes with the engine's resolved decoder and its shared BeamSearches (no new LM)."""
    import asyncio
    import io
    import types

    from xlsr_live.offline import transcribe_file
    from xlsr_live.server.engine import ModelEngine
    from xlsr_live.server.openai_rest import OpenAIRoutes

    engine = ModelEngine(lm_model)
    assert engine.streaming_options.decoder.kind == "beam" and len(engine.beam_searches) == 1
    path = tmp_path / "noise.wav"
    soundfile.write(path, np.random.default_rng(7).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.3,
                    SAMPLE_RATE)

    class Upload:
        filename = "noise.wav"

        def __init__(self):
            self.handle = io.BytesIO(path.read_bytes())

        async def read(self, size):
            return self.handle.read(size)

    async def transcribe():
        return await OpenAIRoutes(types.SimpleNamespace(engine=engine))._run(Upload())

    def no_second_build(*args):
        raise AssertionError("the REST path built its own beam search")

    monkeypatch.setattr("xlsr_live.decoding.factory.build_beam_decoder", no_second_build)
    transcript = asyncio.run(transcribe())
    monkeypatch.undo()
    assert transcript.text == transcribe_file(lm_model, path, decoder=engine.streaming_options.decoder).text
    assert transcript.text != transcribe_file(lm_model, path, decoder=DecoderOptions(kind="greedy")).text
    assert len(engine.beam_searches) == 1
