"""MMS language adapters: two languages with different vocabularies against transformers' target_lang."""

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from xlsr_live.model import load_model  # noqa: E402
from xlsr_live.model.checkpoint import CheckpointError  # noqa: E402
from xlsr_live.model.config import UnsupportedModelError  # noqa: E402
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions  # noqa: E402
from xlsr_live.streaming.recognizer import StreamingRecognizer  # noqa: E402
from xlsr_live.streaming.windows import run_jobs  # noqa: E402
from xlsr_live.ctc import greedy_decode  # noqa: E402

TOLERANCE = 1e-4
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]
VOCABS = {"eng": SPECIALS + list("abcdefghijklmnopqrstuvwxyz'"), "fra": SPECIALS + list("aàâbcçdeéèêfgi")}
FIELDS = dict(conv_dim=(16, 20, 24, 28), conv_kernel=(11, 5, 3, 3), conv_stride=(5, 4, 4, 4), hidden_size=36,
              num_hidden_layers=2, num_attention_heads=3, intermediate_size=52, num_conv_pos_embeddings=7,
              num_conv_pos_embedding_groups=3, feat_extract_norm="layer", do_stable_layer_norm=True,
              adapter_attn_dim=12)


def write_mms(directory):
    """A random MMS-style checkpoint: base weights (eng), adapter.<lang>.safetensors per language,
    vocab.json nested by language, as transformers' load_adapter / target_lang read them."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(vocab_size=len(VOCABS["eng"]), **FIELDS)
    model = transformers.Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(directory)
    for language, labels in VOCABS.items():
        adapter = {name: 0.3 * torch.randn_like(p) for name, p in model._get_adapters().items()
                   if not name.startswith("lm_head")}
        adapter["lm_head.weight"] = 0.3 * torch.randn(len(labels), config.hidden_size)
        adapter["lm_head.bias"] = 0.3 * torch.randn(len(labels))
        adapter["lm_head.bias"][1:4] = -10.0  # no <s>, </s>, <unk> in the texts (conventions differ, issue 16)
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(directory / f"adapter.{language}.safetensors"))
    (directory / "vocab.json").write_text(json.dumps(
        {language: {t: i for i, t in enumerate(labels)} for language, labels in VOCABS.items()}))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "word_delimiter_token": "|", "tokenizer_class": "Wav2Vec2CTCTokenizer"}))
    (directory / "preprocessor_config.json").write_text(json.dumps(
        {"sampling_rate": 16000, "do_normalize": True, "return_attention_mask": True}))
    return directory


@pytest.fixture(scope="module")
def mms_dir(tmp_path_factory):
    """Directory of the random MMS-style checkpoint."""
    return write_mms(tmp_path_factory.mktemp("mms"))


def reference(directory, language, wave):
    """transformers' logits and greedy text with target_lang=language."""
    model = transformers.Wav2Vec2ForCTC.from_pretrained(directory, target_lang=language,
                                                        ignore_mismatched_sizes=True).eval()
    tokenizer = transformers.Wav2Vec2CTCTokenizer.from_pretrained(directory, target_lang=language)
    with torch.inference_mode():
        logits = model(torch.from_numpy(wave)[None]).logits[0]
    return logits, tokenizer.decode(logits.argmax(-1), skip_special_tokens=True)  # as its pipeline does


def audio(seed=1):
    """1.5 s of random audio, normalised."""
    wave = np.random.default_rng(seed).standard_normal(24_000).astype(np.float32)
    return (wave - wave.mean()) / wave.std()


@pytest.mark.parametrize("language", sorted(VOCABS))
def test_language_matches_transformers_target_lang(mms_dir, language):
    """load(language=L): logits within 1e-4 and the same greedy text as transformers with target_lang=L."""
    ours = load_model(mms_dir, language=language)
    wave = audio()
    expected, text = reference(mms_dir, language, wave)
    with torch.inference_mode():
        got = ours.model(torch.from_numpy(wave)[None])[0]
    assert ours.language == language and len(ours.vocab) == len(VOCABS[language]) == got.shape[-1]
    assert (got - expected).abs().max().item() < TOLERANCE
    assert greedy_decode(got.numpy(), ours.vocab)[0] == " ".join(text.split()) and text


def test_with_language_shares_the_base_model(mms_dir):
    """with_language gives the other language's results, shares base weights and is made once."""
    eng = load_model(mms_dir, language="eng")
    fra = eng.with_language("fra")
    wave = audio(2)
    expected, _ = reference(mms_dir, "fra", wave)
    with torch.inference_mode():
        got = fra.model(torch.from_numpy(wave)[None])[0]
    assert (got - expected).abs().max().item() < TOLERANCE
    assert fra.with_language("eng") is eng and eng.with_language("fra") is fra
    shared = eng.model.wav2vec2.encoder.layers[0].attention.q_proj.weight
    assert fra.model.wav2vec2.encoder.layers[0].attention.q_proj.weight is shared
    assert fra.model.wav2vec2.encoder.layers[0].adapter_layer is not eng.model.wav2vec2.encoder.layers[0].adapter_layer
    with torch.inference_mode():  # the base model still gives English
        english = eng.model(torch.from_numpy(wave)[None])[0]
    assert (english - reference(mms_dir, "eng", wave)[0]).abs().max().item() < TOLERANCE


def test_int8_language_model_is_quantized(mms_dir):
    """An int8 base model's other languages get quantized adapters and heads too, close to fp32."""
    fp32 = load_model(mms_dir, language="fra")
    int8 = load_model(mms_dir, language="eng", dtype="int8").with_language("fra")
    assert "quantized" in type(int8.model.lm_head).__module__
    assert "quantized" in type(int8.model.wav2vec2.encoder.layers[1].adapter_layer.linear_1).__module__
    assert np.abs(int8.logits(audio()) - fp32.logits(audio())).max() < 0.2


def test_language_required_and_named(mms_dir, tiny_model_dir):
    """A nested vocabulary needs a language; an unknown one, or a language for a plain checkpoint, is named."""
    with pytest.raises(UnsupportedModelError, match="eng, fra.*language"):
        load_model(mms_dir)
    with pytest.raises(ValueError, match="'deu'"):
        load_model(mms_dir, language="deu")
    with pytest.raises(ValueError, match="'eng'.*no language adapters"):
        load_model(tiny_model_dir, language="eng")


def test_missing_adapter_file_named(mms_dir, tmp_path):
    """A language in vocab.json without its adapter file is a CheckpointError naming the file."""
    import shutil

    copy = shutil.copytree(mms_dir, tmp_path / "mms")
    (copy / "adapter.fra.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"adapter\.fra\.safetensors"):
        load_model(copy, language="eng").with_language("fra")


SHORT = dict(window=WindowOptions(chunk_ms=400, left_context_ms=10_000, lookahead_ms=10_000),
             vad=VadOptions(enabled=False), endpoint=EndpointOptions(enabled=False))


def test_windows_of_two_languages_in_one_call(mms_dir, monkeypatch):
    """Windows of streams in two languages run in one forward pass, each row with its own adapters and head."""
    from xlsr_live.model.encoder import CTCModel

    eng = load_model(mms_dir, language="eng")
    jobs = []
    for model in (eng, eng.with_language("fra")):
        rec = StreamingRecognizer(model, StreamingOptions(**SHORT))
        rec.push(0.1 * audio(3)[:16_000])
        rec.end()
        jobs.append(rec.next_job())
    assert [job.language for job in jobs] == ["eng", "fra"]
    calls, encode = [], CTCModel.encode_features
    monkeypatch.setattr(CTCModel, "encode_features", lambda self, *a, **k: calls.append(a[0].shape) or encode(self, *a, **k))
    together = run_jobs(eng, jobs + jobs[:1])
    assert len(calls) == 1 and calls[0][0] == 3
    assert [rows.shape[1] for rows in together] == [len(VOCABS["eng"]), len(VOCABS["fra"]), len(VOCABS["eng"])]
    for job, rows in zip(jobs + jobs[:1], together):
        np.testing.assert_allclose(rows, run_jobs(eng.with_language(job.language), [job])[0], atol=1e-5)


def test_server_sessions_in_two_languages(mms_dir):
    """Two concurrent native sessions asking for different languages each get their language's text."""
    import asyncio

    from websockets.asyncio.client import connect

    from server_fake import drain, run_server
    from xlsr_live.server.engine import ModelEngine

    eng = load_model(mms_dir, language="eng")
    wave = 0.1 * audio(4)[:20_000]
    pcm = (wave * 32767).astype("<i2").tobytes()

    async def session(url, language):
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "start", "language": language}))
            for start in range(0, len(pcm), 6_400):
                await ws.send(pcm[start:start + 6_400])
            await ws.send(json.dumps({"type": "end"}))
            return await drain(ws)

    async def client(server):
        return await asyncio.gather(session(server.url, "fra"), session(server.url, "eng"),
                                    session(server.url, "deu"))

    fra, english, unknown = run_server(ModelEngine(eng, StreamingOptions(**SHORT)), client)
    decoded = (wave * 32767).astype(np.int16).astype(np.float32) / 32768  # what the server heard
    texts = [[m["text"] for m in messages if m["type"] == "final"] for messages in (fra, english)]
    assert texts[0] != texts[1]
    for messages, language in ((fra, "fra"), (english, "eng")):
        expected = greedy_decode(eng.with_language(language).logits(decoded), eng.with_language(language).vocab)[0]
        assert [m["text"] for m in messages if m["type"] == "final"] == [expected] and expected
    assert unknown[-1]["type"] == "error" and "'deu' is not available; available: eng, fra" in unknown[-1]["message"]
