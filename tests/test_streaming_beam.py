"""Streaming beam search (pyctcdecode): agreement-based stable text, bounded pending frames."""

import numpy as np
import pytest

from xlsr_live.constants import SAMPLE_RATE
from xlsr_live.decoding import DecoderOptions
from xlsr_live.streaming.events import Final, Partial
from xlsr_live.streaming.options import EndpointOptions, StreamingOptions, VadOptions, WindowOptions
from xlsr_live.streaming.recognizer import StreamingRecognizer

pytest.importorskip("pyctcdecode")

WINDOW = WindowOptions(chunk_ms=400, left_context_ms=800, lookahead_ms=200)
TEXT = "hello world this is beam search"


def frame_script(vocab, text):
    """Token id per utterance frame: each character 3 frames then a blank frame."""
    ids = []
    for char in text:
        token = vocab.labels.index("|" if char == " " else char)
        ids += [token] * 3 + [vocab.blank_id]
    return ids


def scripted(vocab, job, script, chunk_frames, left_frames, twin=None):
    """Window logits following the frame script (blank after its end); `twin` (a, b): b ties with a."""
    first = max(0, job.chunk * chunk_frames - left_frames)
    logits = np.zeros((job.num_frames, len(vocab)), dtype=np.float32)
    for offset in range(job.num_frames):
        frame = first + offset
        token = script[frame] if frame < len(script) else vocab.blank_id
        logits[offset, token] = 10.0
        if twin and token == vocab.labels.index(twin[0]):
            logits[offset, vocab.labels.index(twin[1])] = 10.0
    return logits


def run_scripted(model, decoder, seconds=3.0, twin=None):
    """One ungated utterance decoded from scripted logits through the split API; (events, recognizer)."""
    options = StreamingOptions(vad=VadOptions(enabled=False), window=WINDOW, decoder=decoder,
                               endpoint=EndpointOptions(enabled=False))
    rec = StreamingRecognizer(model, options)
    script = frame_script(model.vocab, TEXT)
    events = rec.push(np.zeros(int(seconds * SAMPLE_RATE), np.float32)) + rec.end()
    bases = []
    while (job := rec.next_job()) is not None:
        logits = scripted(model.vocab, job, script, WINDOW.chunk_frames, WINDOW.left_frames, twin)
        decoder_state = rec._utterances[0].decoder
        events += rec.complete(job, logits)
        bases.append(getattr(decoder_state, "base", None))
    return events, bases


def test_beam_final_and_growing_stable(tiny_model):
    """Beam search commits agreed words as stable text while decoding; the final is the script."""
    events, bases = run_scripted(tiny_model, DecoderOptions(kind="beam", beam_width=8))
    partials = [e for e in events if isinstance(e, Partial)]
    final = [e for e in events if isinstance(e, Final)][0]
    assert final.text == TEXT
    assert [w.word for w in final.words] == TEXT.split()
    stables = [p.stable for p in partials]
    assert any(s and s != TEXT for s in stables), stables
    for earlier, later in zip(stables, stables[1:]):
        assert later.startswith(earlier) and not later.endswith(" ")
    assert all(final.text.startswith(s) for s in stables)
    assert bases[-1] > 0  # pending frames restart after agreed words (cost bounded)


def test_beam_matches_greedy_on_clear_input(tiny_model):
    """On unambiguous logits the beam and greedy finals agree, words and times included."""
    beam, _ = run_scripted(tiny_model, DecoderOptions(kind="beam", beam_width=4))
    greedy, _ = run_scripted(tiny_model, DecoderOptions())
    beam_final = [e for e in beam if isinstance(e, Final)][0]
    greedy_final = [e for e in greedy if isinstance(e, Final)][0]
    assert beam_final.text == greedy_final.text == TEXT
    assert [(w.word, w.start) for w in beam_final.words] == [(w.word, w.start) for w in greedy_final.words]


def test_beam_disagreement_is_bounded(tiny_model):
    """When beams keep disagreeing (tied letters), the best beam's older words are committed anyway."""
    decoder = DecoderOptions(kind="beam", beam_width=8, max_beam_frames=50)
    events, bases = run_scripted(tiny_model, decoder, twin=("e", "a"))
    final = [e for e in events if isinstance(e, Final)][0]
    assert len(final.words) == len(TEXT.split())
    assert bases[-1] > 0
    stables = [e.stable for e in events if isinstance(e, Partial)]
    assert any(stables) and all(final.text.startswith(s) for s in stables)
    unbounded, unbounded_bases = run_scripted(tiny_model, DecoderOptions(kind="beam", beam_width=8), twin=("e", "a"))
    assert bases[-1] >= unbounded_bases[-1]


def test_beam_hotwords_split_invariant(tiny_model, speech_audio):
    """Hotwords are accepted; the beam path on real audio gives the same events however it is split."""
    options = StreamingOptions(window=WINDOW, decoder=DecoderOptions(kind="beam", beam_width=4, hotwords=("beam",)))
    audio = speech_audio[:SAMPLE_RATE * 3]
    rec = StreamingRecognizer(tiny_model, options)
    events = rec.feed(audio) + rec.flush()
    rec.reset()
    pieces = [e for start in range(0, len(audio), 2_345) for e in rec.feed(audio[start:start + 2_345])]
    assert pieces + rec.flush() == events
    assert any(isinstance(e, Final) for e in events)


class WordHistoryLM:
    """A stand-in for pyctcdecode's KenLM wrapper whose state is the tuple of words scored so far."""

    order = 3

    def get_start_state(self):
        return ("<s>",)

    def score_partial_token(self, partial_token):
        return 0.0

    def score(self, prev_state, word, is_last_word=False):
        return 0.0, tuple(prev_state) + (word,)


def test_beam_restarts_from_lm_state_of_committed_words(tiny_model):
    """Each re-decode replays the last stable word from the LM state before it (after the others)."""
    from pyctcdecode.alphabet import Alphabet
    from pyctcdecode.decoder import BeamSearchDecoderCTC

    from xlsr_live.decoding.beam import BeamAlphabet, BeamUtteranceDecoder

    vocab = tiny_model.vocab
    labels = BeamAlphabet(vocab).labels
    search = BeamSearchDecoderCTC(Alphabet.build_alphabet(labels), WordHistoryLM())
    # the last word waits for a next one, so finish() still has words to decode after the committed ones
    decoder = BeamUtteranceDecoder(vocab, DecoderOptions(kind="beam", beam_width=8, word_end_gap_frames=None), search)
    starts = []
    original = search.decode_beams
    search.decode_beams = lambda logits, **k: starts.append((k["lm_start_state"], len(decoder.words), logits)) or original(logits, **k)
    script = frame_script(vocab, TEXT)
    logits = np.full((len(script) + 20, len(vocab)), 0.0, dtype=np.float32)
    for frame, token in enumerate(script + [vocab.blank_id] * 20):
        logits[frame, token] = 10.0
    chunk, lookahead = WINDOW.chunk_frames, WINDOW.lookahead_frames
    for begin in range(0, len(logits), chunk):
        decoder.advance(logits[begin:begin + chunk], logits[begin + chunk:begin + chunk + lookahead])
    text, words = decoder.finish(0)
    assert text == TEXT
    committed = [w[0] for w in decoder.words]
    assert 0 < len(committed) < len(TEXT.split())
    for state, count, frames in starts:
        assert state == ("<s>",) + tuple(committed[:max(count - 1, 0)])
        if count:  # the decoded frames open with the last stable word, spelled with certainty
            certain = [labels[i] for i in frames.argmax(axis=1)[:(frames.max(axis=1) == 0).argmin()]]
            spelled = "".join(c for k, c in enumerate(certain) if c and (k == 0 or c != certain[k - 1]))
            assert spelled == committed[count - 1]
    assert any(count > 0 for _, count, _ in starts)


def noisy_word_logits(vocab, seed, words):
    """Logits of six random `words` (letters 1-3 frames, optional delimiters and blanks), noisy."""
    rng = np.random.default_rng(seed)
    ids = []
    for index, word in enumerate(rng.choice(words, 6)):
        if index:
            ids += [vocab.labels.index("|")] * int(rng.integers(0, 2)) + [vocab.blank_id] * int(rng.integers(0, 3))
        for char in word:
            ids += [vocab.labels.index(char)] * int(rng.integers(1, 4)) + [vocab.blank_id] * int(rng.integers(0, 2))
    ids += [vocab.blank_id] * 12
    logits = rng.normal(0.0, 0.5, (len(ids), len(vocab))).astype(np.float32)
    logits[np.arange(len(ids)), ids] += 7.0
    return logits


def test_beam_stream_equals_one_decode_with_lm(tiny_model, tmp_path):
    """With a KenLM model and one-letter words in it, streaming finals equal one decode of the whole
    utterance for any chunking: letters around a restart point are not read as new words."""
    pytest.importorskip("kenlm")
    from xlsr_live.decoding.beam import BeamAlphabet, BeamUtteranceDecoder, build_beam_decoder, decode_whole, log_softmax
    from xlsr_live.decoding.testing import write_arpa

    words = ["lots", "will", "s", "see", "sell", "a", "tall", "tree", "is", "as"]
    arpa = write_arpa(tmp_path / "lm.arpa", [["lots", "will", "see"], ["a", "tall", "tree"], ["s"], ["is", "as", "sell"]])
    options = DecoderOptions(kind="beam", beam_width=8, kenlm_path=str(arpa), beta=2.0)
    alphabet = BeamAlphabet(tiny_model.vocab)
    search = build_beam_decoder(alphabet, options)
    for seed in range(8):
        logits = noisy_word_logits(tiny_model.vocab, seed, words)
        whole, _ = decode_whole(search, alphabet.reduce(log_softmax(logits)), options)
        for chunk in (5, 8, 13):
            decoder = BeamUtteranceDecoder(tiny_model.vocab, options, search, alphabet)
            for begin in range(0, len(logits), chunk):
                decoder.advance(logits[begin:begin + chunk], logits[begin + chunk:begin + chunk + 5])
            assert decoder.finish(0)[0] == whole, (seed, chunk)


def advance_rival_script(vocab, margin, rival=8.0, gap=None, ahead=0):
    """Stable text after each chunk and the final text of scripted logits in which "a" rivals every "e"."""
    from xlsr_live.decoding.beam import BeamUtteranceDecoder

    script = frame_script(vocab, TEXT) + [vocab.blank_id] * 20
    logits = np.zeros((len(script), len(vocab)), dtype=np.float32)
    logits[np.arange(len(script)), script] = 10.0
    logits[[f for f, t in enumerate(script) if vocab.labels[t] == "e"], vocab.labels.index("a")] = rival
    decoder = BeamUtteranceDecoder(vocab, DecoderOptions(kind="beam", beam_width=8, stable_vote_margin=margin,
                                                            word_end_gap_frames=gap, stable_lookahead_frames=ahead))
    chunk, lookahead = WINDOW.chunk_frames, WINDOW.lookahead_frames
    stables = [decoder.advance(logits[b:b + chunk], logits[b + chunk:b + chunk + lookahead]).stable
               for b in range(0, len(logits), chunk)]
    return stables, decoder.finish(0)[0]


def test_vote_margin_commits_earlier_and_never_revises(tiny_model):
    """Only near-best beams vote: words are stable chunks earlier than when all beams vote, never revised."""
    every_beam, every_final = advance_rival_script(tiny_model.vocab, None)
    near_best, near_final = advance_rival_script(tiny_model.vocab, 1.0)
    assert every_final == near_final == TEXT
    assert not any(every_beam)  # low-scoring "hallo"-like beams never agree with the best one
    assert near_best[0] == "hello" and len(near_best[-1].split()) == len(TEXT.split()) - 1
    for earlier, later in zip(near_best, near_best[1:] + [near_final]):
        assert later.startswith(earlier)


def test_word_end_gap_commits_last_word_before_the_end(tiny_model):
    """With word_end_gap_frames a beam's last word followed by silence becomes stable before finish()."""
    waiting, _ = advance_rival_script(tiny_model.vocab, 1.0)
    gapped, final = advance_rival_script(tiny_model.vocab, 1.0, gap=5)
    assert final == TEXT and waiting[-1] != TEXT
    assert gapped[-1] == TEXT
    for earlier, later in zip(gapped, gapped[1:] + [final]):
        assert later.startswith(earlier)
    assert all(len(g) >= len(w) for g, w in zip(gapped, waiting))


def test_stable_words_may_end_in_the_lookahead(tiny_model):
    """With stable_lookahead_frames a finished word ending in the lookahead is stable a chunk earlier; never revised."""
    committed_only, final = advance_rival_script(tiny_model.vocab, 1.0, gap=5)
    peeked, peeked_final = advance_rival_script(tiny_model.vocab, 1.0, gap=5, ahead=None)
    assert final == peeked_final == TEXT
    assert all(len(p) >= len(c) for p, c in zip(peeked, committed_only))
    assert any(len(p) > len(c) for p, c in zip(peeked, committed_only))
    for earlier, later in zip(peeked, peeked[1:] + [peeked_final]):
        assert later.startswith(earlier)


def test_stable_lookahead_frames_validated():
    """A stable_lookahead_frames that is not None or an int >= 0 is a ValueError naming it."""
    for bad in (True, -1, 1.5):
        with pytest.raises(ValueError, match="stable_lookahead_frames="):
            DecoderOptions(kind="beam", stable_lookahead_frames=bad)


def test_token_min_logp_validated_and_passed_to_the_search():
    """token_min_logp must be a finite number <= 0, and run_beams hands it to decode_beams."""
    from xlsr_live.decoding.beam import run_beams

    for bad in (True, 0.5, float("nan"), "x"):
        with pytest.raises(ValueError, match="token_min_logp="):
            DecoderOptions(kind="beam", token_min_logp=bad)
    seen = []

    class Recorder:
        def decode_beams(self, logits, **kwargs):
            seen.append(kwargs["token_min_logp"])
            return []

    run_beams(Recorder(), np.zeros((3, 4)), DecoderOptions(kind="beam", token_min_logp=-4.5))
    assert seen == [-4.5]


@pytest.mark.parametrize("fields", [{"word_end_gap_frames": 0}, {"word_end_gap_frames": 2.5},
                                    {"word_end_gap_frames": True}])
def test_word_end_gap_validated(fields):
    """A word_end_gap_frames that is not an int >= 1 is a ValueError naming it."""
    with pytest.raises(ValueError, match="word_end_gap_frames="):
        DecoderOptions(kind="beam", **fields)


@pytest.mark.parametrize("margin", [-1.0, float("nan"), float("inf"), "2", True])
def test_vote_margin_validated(margin):
    """A negative, non-finite or non-numeric stable_vote_margin is a ValueError naming it."""
    with pytest.raises(ValueError, match="stable_vote_margin="):
        DecoderOptions(kind="beam", stable_vote_margin=margin)
