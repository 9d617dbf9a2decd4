"""Greedy CTC decoding: collapse, words, timing, confidence and incremental equivalence."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlsr_live.ctc import GreedyCTCDecoder, greedy_decode, normalize_text, runs_text
from xlsr_live.model.testing import ENGLISH_VOCAB
from xlsr_live.model.tokenizer import CTCVocabulary

VOCAB = CTCVocabulary.from_mappings({t: i for i, t in enumerate(ENGLISH_VOCAB)}, {})


def _peaky(tokens, margin=6.0):
    """Logits whose argmax per frame is the given token sequence."""
    ids = [VOCAB.labels.index(t) for t in tokens]
    logits = np.zeros((len(ids), len(VOCAB)), np.float32)
    logits[np.arange(len(ids)), ids] = margin
    return logits


def test_collapse_repeats_and_blanks():
    """Repeats merge, blanks separate doubled letters, delimiters make spaces."""
    text, words = greedy_decode(_peaky(["<pad>", "h", "h", "e", "l", "<pad>", "l", "o", "|", "|", "a", "<pad>"]), VOCAB)
    assert text == "hello a"
    assert [w.word for w in words] == ["hello", "a"]


def test_word_times_in_frames_of_20ms():
    """Word start/end come from their first and last character frames (20 ms each)."""
    _, words = greedy_decode(_peaky(["<pad>"] * 5 + ["h", "i"] + ["|"] + ["<pad>"] * 10 + ["o", "k"]), VOCAB,
                             frame_offset=50)
    assert words[0].start == (50 + 5) / 50 and words[0].end == (50 + 7) / 50
    assert words[1].start == (50 + 18) / 50 and words[1].end == (50 + 20) / 50


def test_confidence_in_unit_interval():
    """Confidence is the mean posterior of a word's characters, within [0, 1]."""
    _, sure = greedy_decode(_peaky(["a", "b"], margin=20.0), VOCAB)
    _, unsure = greedy_decode(_peaky(["a", "b"], margin=0.5), VOCAB)
    assert 0.99 < sure[0].conf <= 1.0
    assert 0.0 <= unsure[0].conf < 0.5


def test_special_tokens_are_silent():
    """bos, eos and unk produce no text, but still separate repeated letters like the blank."""
    text, _ = greedy_decode(_peaky(["<s>", "a", "</s>", "<unk>", "a", "<unk>", "|", "b"]), VOCAB)
    assert text == "aa b"


@settings(max_examples=60, deadline=None)
@given(tokens=st.lists(st.sampled_from(["<pad>", "|", "a", "b", "c"]), min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=6))
def test_incremental_equals_whole(tokens, cuts):
    """Advancing in pieces gives the same runs as decoding the whole input."""
    logits = _peaky(tokens)
    whole = GreedyCTCDecoder(VOCAB)
    whole.advance(logits)
    pieces = GreedyCTCDecoder(VOCAB)
    for part in np.split(logits, sorted(set(c for c in cuts if c < len(tokens)))):
        pieces.advance(part)
    assert [(r.token_id, r.start_frame, r.end_frame) for r in pieces.runs] == \
        [(r.token_id, r.start_frame, r.end_frame) for r in whole.runs]


@settings(max_examples=60, deadline=None)
@given(tokens=st.lists(st.sampled_from(["<pad>", "|", "a", "b"]), min_size=2, max_size=40), cut=st.integers(1, 39))
def test_peek_does_not_commit(tokens, cut):
    """Committed text plus peeked text equals the whole text, and peek changes no state."""
    cut = min(cut, len(tokens) - 1)
    logits = _peaky(tokens)
    decoder = GreedyCTCDecoder(VOCAB)
    decoder.advance(logits[:cut])
    before = runs_text(decoder.runs, VOCAB)
    tail = runs_text(decoder.peek(logits[cut:]), VOCAB)
    assert runs_text(decoder.runs, VOCAB) == before
    assert normalize_text(before + tail) == greedy_decode(logits, VOCAB)[0]


def test_decoders_implement_the_protocol():
    """Greedy and beam utterance decoders both satisfy the declared UtteranceDecoder protocol."""
    from xlsr_live.decoding import DecoderFactory, DecoderOptions, UtteranceDecoder

    assert isinstance(DecoderFactory(VOCAB, DecoderOptions())(), UtteranceDecoder)
    assert not isinstance(object(), UtteranceDecoder)
    pytest.importorskip("pyctcdecode")
    assert isinstance(DecoderFactory(VOCAB, DecoderOptions(kind="beam"))(), UtteranceDecoder)


def test_beam_without_pyctcdecode_names_the_extra(monkeypatch):
    """Beam search without pyctcdecode (or an LM without kenlm): one error naming the install line."""
    from xlsr_live.decoding import DecoderFactory, DecoderOptions
    from xlsr_live.decoding.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "pyctcdecode", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"xlsr-live\[beam\].*--no-deps pyctcdecode==0\.5\.0") as caught:
        DecoderFactory(VOCAB, DecoderOptions(kind="beam"))()
    assert isinstance(caught.value, ValueError)  # the CLI reports ValueErrors in one line
    monkeypatch.delitem(sys.modules, "pyctcdecode")
    pytest.importorskip("pyctcdecode")
    monkeypatch.setitem(sys.modules, "kenlm", None)
    with pytest.raises(MissingExtraError, match=r"xlsr-live\[lm\]"):
        DecoderFactory(VOCAB, DecoderOptions(kind="beam", kenlm_path="lm.arpa"))()
