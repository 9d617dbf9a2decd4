"""benchmarks/streaming_bench.py: word errors attributed to sentences, and the WER-gap interval."""

import numpy as np

import streaming_bench


def test_errors_land_in_the_sentence_they_align_to():
    """A substitution in the first sentence and a trailing insertion count for the right sentences."""
    errors, counts = streaming_bench.errors_per_sentence(["a b c", "d e"], "a x c d e f")
    assert counts.tolist() == [3, 2]
    assert errors.tolist() == [1, 1]


def test_deletions_spanning_sentences_are_split():
    """Deleting the last word of one sentence and the first of the next charges each sentence one."""
    errors, _ = streaming_bench.errors_per_sentence(["a b", "c d"], "a d")
    assert errors.tolist() == [1, 1]


def test_gap_interval_brackets_a_uniform_gap_and_is_zero_for_equal_texts():
    """Equal texts give [0, 0]; a streamed text one error worse per sentence gives a positive interval."""
    sentences = [f"w{i} x{i} y{i} z{i}" for i in range(20)]
    joined = " ".join(sentences)
    assert streaming_bench.gap_interval(sentences, joined, joined) == [0.0, 0.0]
    worse = " ".join(s.replace("x", "q") for s in sentences)
    low, high = streaming_bench.gap_interval(sentences, worse, joined)
    assert np.isclose(low, 0.25) and np.isclose(high, 0.25)
