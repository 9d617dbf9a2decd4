"""Language models as checkpoints ship them: `language_model/` is found, used by default, and changes words."""

import json
import shutil
import sys

import numpy as np
import pytest

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.decoding import DecoderOptions
from xlsr_live.decoding.lm import LanguageModelError, find_language_model, read_language_model, resolve_decoder
from xlsr_live.streaming.events import Final
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions

pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

SPOKEN = "hello world"
HEARD_AS = {"e": "a"}  # acoustics prefer "a" over the spoken "e": greedy hears "hallo world"
WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)


def _logits(vocab, job, chunk_frames, left_frames):
    """Window logits of SPOKEN: 3 frames per character then a blank; HEARD_AS letters win by a little."""
    script = []
    for char in SPOKEN:
        heard = HEARD_AS.get(char)
        script += [(vocab.labels.index("|" if char == " " else char), heard and vocab.labels.index(heard))] * 3
        script.append((vocab.blank_id, None))
    first = max(0, job.chunk * chunk_frames - left_frames)
    logits = np.zeros((job.num_frames, len(vocab)), dtype=np.float32)
    for offset in range(job.num_frames):
        spoken, heard = script[first + offset] if first + offset < len(script) else (vocab.blank_id, None)
        logits[offset, spoken] = 9.0 if heard is not None else 10.0
        if heard is not None:
            logits[offset, heard] = 10.0
    return logits


def _final_text(model, decoder):
    """(final text, resolved decoder options) of one ungated utterance decoded from the scripted logits."""
    from xlsr_live.streaming.recognizer import StreamingRecognizer

    options = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW, decoder=decoder,
                               endpoint=EndpointOptions(enabled=False))
    rec = StreamingRecognizer(model, options)
    events = rec.push(np.zeros(2 * SAMPLE_RATE, np.float32)) + rec.end()
    while (job := rec.next_job()) is not None:
        events += rec.complete(job, _logits(model.vocab, job, WINDOW.chunk_frames, WINDOW.left_frames))
    return " ".join(e.text for e in events if isinstance(e, Final)), rec.options.decoder


def test_checkpoint_language_model_is_used_by_default(lm_model, lm_checkpoint):
    """Default decoding finds language_model/ and beam search with it turns "hallo" into the LM's "hello"."""
    text, decoder = _final_text(lm_model, DecoderOptions())
    assert decoder.kind == "beam" and decoder.kenlm_path == str(lm_checkpoint / "language_model")
    assert text == "hello world"


def test_greedy_turns_the_language_model_off(lm_model):
    """kind="greedy" ignores the folder and prints what the acoustics prefer."""
    text, decoder = _final_text(lm_model, DecoderOptions(kind="greedy"))
    assert decoder.kenlm_path is None and text == "hallo world"


def test_options_override_attrs_json(lm_model):
    """alpha=0 in the options outweighs attrs.json's alpha=1: the LM then has no say."""
    text, decoder = _final_text(lm_model, DecoderOptions(alpha=0.0))
    assert decoder.kind == "beam" and text == "hallo world"


def test_no_folder_means_greedy(tiny_model_dir):
    """A checkpoint without language_model/ decodes greedily by default."""
    assert find_language_model(tiny_model_dir) is None
    assert resolve_decoder(DecoderOptions(), tiny_model_dir).kind == "greedy"


def test_missing_kenlm_falls_back_to_greedy(lm_checkpoint, monkeypatch, caplog):
    """Without the lm extra's packages the default decodes greedily and says which install line is missing."""
    monkeypatch.setitem(sys.modules, "kenlm", None)
    assert resolve_decoder(DecoderOptions(), lm_checkpoint).kind == "greedy"
    assert "xlsr-live[lm]" in caplog.text


def test_folder_layout_errors_name_the_folder(lm_checkpoint, tmp_path):
    """Two models in one folder, or unknown attrs.json keys: LanguageModelError naming the path."""
    folder = tmp_path / "language_model"
    shutil.copytree(lm_checkpoint / "language_model", folder)
    files = read_language_model(folder)
    assert files.model_path.suffix == ".arpa" and "hello" in files.unigrams and files.attrs["alpha"] == 1.0
    shutil.copy(files.model_path, folder / "second.arpa")
    with pytest.raises(LanguageModelError, match="language_model: expected one KenLM model"):
        read_language_model(folder)
    (folder / "second.arpa").unlink()
    (folder / "attrs.json").write_text(json.dumps({"alpha": 1.0, "temperature": 2}))
    with pytest.raises(LanguageModelError, match="attrs.json.*temperature"):
        read_language_model(folder)
