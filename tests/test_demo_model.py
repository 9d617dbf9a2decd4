"""The embedded demo model: layout, size and a sanity transcription of the bundled example."""
import json
import os

import pytest

DEMO = os.path.join(os.path.dirname(__file__), "..", "xlsr_live", "models", "demo")

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(DEMO, "model.safetensors")),
                                reason="demo model not exported yet")


def test_files_and_size():
    """Every file of a Hugging Face checkpoint plus the example is there; the weights stay under 25 MB."""
    for f in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
              "preprocessor_config.json", "example.wav", "example.txt"):
        assert os.path.exists(os.path.join(DEMO, f)), f
    assert os.path.getsize(os.path.join(DEMO, "model.safetensors")) <= 25_000_000


def test_config_and_vocab():
    """The config is an XLSR-kind CTC model at 16 kHz; the vocabulary has the blank, delimiter and letters."""
    cfg = json.load(open(os.path.join(DEMO, "config.json")))
    vocab = json.load(open(os.path.join(DEMO, "vocab.json")))
    assert cfg["feat_extract_norm"] == "layer" and cfg["do_stable_layer_norm"] and cfg["conv_bias"]
    assert tuple(cfg["conv_kernel"]) == (10, 3, 3, 3, 3, 2, 2)
    assert tuple(cfg["conv_stride"]) == (5, 2, 2, 2, 2, 2, 2)
    assert cfg["vocab_size"] == len(vocab) and vocab["<pad>"] == cfg["pad_token_id"] == 0
    assert vocab["|"] == 4 and all(c in vocab for c in "abcdefghijklmnopqrstuvwxyz'")
    pre = json.load(open(os.path.join(DEMO, "preprocessor_config.json")))
    assert pre["sampling_rate"] == 16000 and pre["do_normalize"] and pre["return_attention_mask"]
    tok = json.load(open(os.path.join(DEMO, "tokenizer_config.json")))
    assert tok["tokenizer_class"] == "Wav2Vec2CTCTokenizer" and tok["word_delimiter_token"] == "|"


def _status():
    """The export's declared training status (STATUS.json), 'trained' once targets were met."""
    path = os.path.join(DEMO, "STATUS.json")
    return json.load(open(path)) if os.path.exists(path) else {"status": "trained"}


def test_our_loader_matches_transformers():
    """xlsr-live's loader and transformers' from_pretrained give the same logits on the example."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    sf = pytest.importorskip("soundfile")
    from xlsr_live.model import load_model

    x, _ = sf.read(os.path.join(DEMO, "example.wav"), dtype="float32")
    ours = load_model("demo", dtype="float32")
    reference = transformers.Wav2Vec2ForCTC.from_pretrained(DEMO).eval()
    wave = torch.from_numpy(ours.preprocessing.normalize(x))[None]
    with torch.inference_mode():
        expected = reference(wave).logits[0].numpy()
    got = ours.logits(x)
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-4


def test_example_transcribes():
    """Once declared trained, the demo model transcribes the example with CER below 50 %."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    sf = pytest.importorskip("soundfile")
    jiwer = pytest.importorskip("jiwer")
    status = _status()
    if status["status"] != "trained":
        pytest.skip(f"demo model is declared an early checkpoint ({status}); accuracy is checked once trained")
    model = transformers.Wav2Vec2ForCTC.from_pretrained(DEMO).eval()
    proc = transformers.Wav2Vec2Processor.from_pretrained(DEMO)
    x, sr = sf.read(os.path.join(DEMO, "example.wav"), dtype="float32")
    assert sr == 16000 and x.ndim == 1 and 4.0 <= len(x) / sr <= 9.0
    inp = proc(x, sampling_rate=sr, return_tensors="pt")
    with torch.inference_mode():
        ids = model(inp.input_values, attention_mask=inp.attention_mask).logits.argmax(-1)
    hyp = proc.batch_decode(ids)[0]
    ref = open(os.path.join(DEMO, "example.txt")).read().strip()
    assert jiwer.cer(ref, hyp) < 0.5, (hyp, ref)  # character edit distance / reference length


def test_shipped_weights_give_the_recorded_example_transcript():
    """The shipped weights transcribe the example (greedy) as export.py recorded in STATUS.json, CER within 1 point."""
    pytest.importorskip("torch")
    import jiwer  # a test dependency (pyproject's test extra)
    from xlsr_live.decoding import DecoderOptions
    from xlsr_live.model import load_model
    from xlsr_live.offline import transcribe_file

    recorded = _status().get("example_greedy")
    assert recorded, "STATUS.json lacks example_greedy: re-run recipes/demo_model/export.py"
    hyp = transcribe_file(load_model("demo", dtype="float32"), os.path.join(DEMO, "example.wav"),
                          decoder=DecoderOptions(kind="greedy")).text
    ref = open(os.path.join(DEMO, "example.txt")).read().strip()
    assert abs(jiwer.cer(ref, hyp) - recorded["cer"]) <= 0.01, (hyp, recorded)


@pytest.fixture(scope="module")
def example():
    """The bundled example: (audio as float32 at 16 kHz, its reference text)."""
    sf = pytest.importorskip("soundfile")
    audio, rate = sf.read(os.path.join(DEMO, "example.wav"), dtype="float32")
    assert rate == 16000
    return audio, open(os.path.join(DEMO, "example.txt")).read().strip()


def test_our_offline_transcript_equals_the_transformers_pipeline(example):
    """`xlsr-live transcribe`'s offline path and transformers' ASR pipeline give the same text on the example."""
    transformers = pytest.importorskip("transformers")
    from xlsr_live.model import load_model
    from xlsr_live.decoding import DecoderOptions
    from xlsr_live.offline import transcribe_file

    # the pipeline decodes greedily: the demo's configs name no Wav2Vec2ProcessorWithLM
    ours = transcribe_file(load_model("demo", dtype="float32"), os.path.join(DEMO, "example.wav"),
                           decoder=DecoderOptions(kind="greedy")).text
    reference = transformers.pipeline("automatic-speech-recognition", model=DEMO, device="cpu")(example[0])["text"]
    assert ours and ours == reference


def test_our_streaming_final_is_as_accurate_as_offline(example):
    """The streaming engine's finals on the example are as accurate as the offline transcript (parity,
    not accuracy: the demo model is undertrained) and close to it character by character."""
    jiwer = pytest.importorskip("jiwer")
    from xlsr_live.model import load_model
    from xlsr_live.offline import transcribe_array
    from xlsr_live.file_stream import stream_file
    from xlsr_live.decoding import DecoderOptions
    from xlsr_live.streaming.options import StreamingOptions

    def finals(decoder: DecoderOptions) -> str:
        events = stream_file(model, os.path.join(DEMO, "example.wav"), StreamingOptions(decoder=decoder))
        return " ".join(e.text for e in events if e.type == "final" and e.text)

    model = load_model("demo", dtype="float32")
    offline = transcribe_array(model, example[0]).text  # both by default with the demo's language model
    streamed = finals(DecoderOptions())
    assert streamed
    # measured with the run3 checkpoint and its LM: CER against the reference 0.604 streamed, 0.685 offline
    # (a weak model's streaming and offline texts differ while being equally wrong: field notes);
    # the long-recording figure is benchmarks/streaming_bench.py's
    assert jiwer.cer(example[1], streamed) <= jiwer.cer(example[1], offline) + 0.10, (streamed, offline)
    # closeness on the acoustic (greedy) texts, measured 0.33: the LM's word choices amplify the weak
    # model's differences (CER 0.58 between the two LM texts)
    greedy = DecoderOptions(kind="greedy")
    offline, streamed = transcribe_array(model, example[0], decoder=greedy).text, finals(greedy)
    assert jiwer.cer(offline, streamed) < 0.5, (streamed, offline)


def test_language_model_layout_and_package_size():
    """language_model/ holds exactly pyctcdecode's three files and the package with it stays <= 30 MB."""
    lm = os.path.join(DEMO, "language_model")
    if not os.path.isdir(lm):
        pytest.skip("no language model built yet (recipes/demo_model/build_lm.py)")
    files = sorted(f for f in os.listdir(lm) if not f.startswith("."))
    assert files[:2] == ["attrs.json", "lm.bin"] and files[2] == "unigrams.txt" and len(files) == 3
    attrs = json.load(open(os.path.join(lm, "attrs.json")))
    assert set(attrs) == {"alpha", "beta", "unk_score_offset", "score_boundary"}
    total = sum(os.path.getsize(os.path.join(root, f)) for root, _, fs in os.walk(DEMO) for f in fs)
    assert total <= 30_000_000, total


def test_language_model_loads_as_pyctcdecode_folder():
    """pyctcdecode's own loader reads the folder, and the LM knows the example's words."""
    pytest.importorskip("kenlm")
    pyctcdecode = pytest.importorskip("pyctcdecode")
    lm_dir = os.path.join(DEMO, "language_model")
    if not os.path.isdir(lm_dir):
        pytest.skip("no language model built yet (recipes/demo_model/build_lm.py)")
    lm = pyctcdecode.LanguageModel.load_from_dir(lm_dir)
    words = open(os.path.join(DEMO, "example.txt")).read().split()
    assert lm.order >= 3
    assert all(w in lm._unigram_set for w in words), words
