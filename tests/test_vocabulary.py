"""Vocabulary conventions: greedy text equals transformers' Wav2Vec2CTCTokenizer on unusual vocabularies."""

import itertools
import json
import string

import numpy as np
import pytest

from xlsr_live.ctc import greedy_decode
from xlsr_live.model import CheckpointError, CTCVocabulary

transformers = pytest.importorskip("transformers")

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
HF_BLOG_SPECIALS = ["[UNK]", "[PAD]"]  # the fine-tuning blog's layout: appended after the letters
HF_BLOG_CONFIG = {"unk_token": "[UNK]", "pad_token": "[PAD]"}
# name: (vocabulary in id order, tokenizer_config.json entries)
VOCABULARIES = {
    "english_added_special": (SPECIALS + ["|", "'"] + list(string.ascii_lowercase) + ["[laugh]"],
                              {"additional_special_tokens": ["[laugh]"]}),
    "upper_case_vocab_lowered": (SPECIALS + ["|"] + list(string.ascii_uppercase), {"do_lower_case": True}),
    # no Σ: we lower-case per token (stable text never changes), so a word-final Σ gives σ, not ς
    "greek_lowered": (SPECIALS + ["|"] + list("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΤΥΦΧΨΩΆΈΉΊΌΎΏ"), {"do_lower_case": True}),
    "chinese_no_delimiter": (SPECIALS + list("你好世界我们的是不了人在有这中大来上国个到说"), {}),
    "cyrillic_other_delimiter": (["▁"] + list("абвгдеёжзийклмнопрстуфхцчшщъыьэюя") + HF_BLOG_SPECIALS,
                                 {**HF_BLOG_CONFIG, "word_delimiter_token": "▁"}),
    "devanagari_pad_last": (["|"] + list("कखगघचछजझटडतथदधनपबभमयरलवशसहािीुूेैोौं्ँः") + HF_BLOG_SPECIALS,
                            HF_BLOG_CONFIG),
    "arabic_extra_special": (SPECIALS + ["|"] + list("ابتثجحخدذرزسشصضطظعغفقكلمنهوية") + ["<noise>"],
                             {"extra_special_tokens": ["<noise>"]}),
    "literal_space_no_delimiter": (SPECIALS + [" "] + list("abcdef"), {}),
}


def _write(directory, labels, config):
    """vocab.json and tokenizer_config.json as a checkpoint carries them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(labels)}), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "Wav2Vec2CTCTokenizer", **config}), encoding="utf-8")
    return directory


@pytest.fixture(params=sorted(VOCABULARIES))
def vocabularies(request, tmp_path):
    """(ours, transformers' tokenizer) read from the same files."""
    labels, config = VOCABULARIES[request.param]
    directory = _write(tmp_path / request.param, labels, config)
    # transformers 5.24's from_pretrained drops word_delimiter_token from tokenizer_config.json
    # (it passes None and falls back to "|"); the constructor takes the file's settings as they are
    return (CTCVocabulary.from_directory(directory),
            transformers.Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), **config))


def _random_logits(vocab_size, seed, frames=400, silence=()):
    """Random logits with long runs (every id wins somewhere); ids in `silence` never win."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((frames, vocab_size)).astype(np.float32)
    logits = np.repeat(logits[: frames // 2], 2, axis=0)  # repeats, so grouping matters
    logits[:, list(silence)] = -1e4
    return logits


def _same_text(text):
    """Whitespace collapsed (our text never has double spaces; transformers keeps `| <pad> |` as two)."""
    return " ".join(text.split())


def _without_specials(tokenizer, ids):
    """transformers' pipeline text (decode without skipping) with special tokens dropped after grouping."""
    specials = set(tokenizer.all_special_tokens) - {tokenizer.word_delimiter_token}
    grouped = [i for i, _ in itertools.groupby(ids)]
    kept = [i for i in grouped if tokenizer.convert_ids_to_tokens(i) not in specials]
    return tokenizer.decode(kept, group_tokens=False)


def test_text_equals_transformers_without_special_tokens(vocabularies):
    """Greedy text = transformers' decode of the grouped ids without special tokens; none appears."""
    vocab, tokenizer = vocabularies
    for seed in range(5):
        logits = _random_logits(len(vocab), seed)
        ids = logits.argmax(axis=-1).tolist()
        text, _ = greedy_decode(logits, vocab)
        assert text == _same_text(_without_specials(tokenizer, ids))
        assert not any(t in text for t in tokenizer.all_special_tokens if t.strip() and t != tokenizer.word_delimiter_token)


def test_text_equals_pipeline_batch_decode(vocabularies):
    """Where no special token wins a frame, greedy text equals the pipeline's batch_decode exactly."""
    vocab, tokenizer = vocabularies
    silent = [i for i in range(len(vocab)) if vocab.is_silent(i) and i != vocab.blank_id]
    batch = [_random_logits(len(vocab), seed, silence=silent) for seed in range(5)]
    expected = tokenizer.batch_decode([logits.argmax(axis=-1) for logits in batch])
    assert [greedy_decode(logits, vocab)[0] for logits in batch] == [_same_text(t) for t in expected]


def test_words_split_at_delimiters_or_per_token(vocabularies):
    """Words are the text's space-separated words; without a delimiter, every token is one word."""
    vocab, _ = vocabularies
    text, words = greedy_decode(_random_logits(len(vocab), seed=7), vocab)
    if vocab.has_word_boundaries:
        assert [w.word for w in words] == text.split()
    else:
        assert "".join(w.word for w in words) == text and all(len(w.word) == 1 for w in words)
        assert len(words) > 10


def test_beam_labels_match_greedy_text(vocabularies):
    """Beam search (no LM) on peaky logits gives the greedy text: same labels, specials silent."""
    from xlsr_live.decoding import DecoderFactory, DecoderOptions

    pytest.importorskip("pyctcdecode")
    vocab, _ = vocabularies
    ids = _random_logits(len(vocab), seed=3).argmax(axis=-1)
    logits = np.eye(len(vocab), dtype=np.float32)[ids] * 20  # peaky: beam search agrees with greedy
    decoder = DecoderFactory(vocab, DecoderOptions(kind="beam", beam_width=4))()
    decoder.advance(logits, logits[:0])
    text, _ = decoder.finish(0)
    assert text == greedy_decode(logits, vocab)[0]


def test_missing_vocab_is_one_line_naming_the_file(tiny_model_dir, tmp_path, capsys):
    """A checkpoint without vocab.json: CheckpointError naming the file, one error line at the CLI."""
    import shutil

    from xlsr_live.cli import main
    from xlsr_live.model import load_model

    broken = tmp_path / "no_vocab"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match=r"no_vocab/vocab\.json"):
        load_model(broken)
    audio = tmp_path / "a.wav"
    import soundfile

    soundfile.write(audio, np.zeros(16_000, dtype=np.float32), 16_000)
    assert main(["transcribe", str(audio), "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vocab.json" in err and "Traceback" not in err
